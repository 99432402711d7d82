"""Run the suites with Great Expectations (an ephemeral context, a pandas data source, one
ValidationDefinition per suite) and turn GE's result into a `Result` the reports and the pipeline read.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import great_expectations as gx
import numpy as np
import pandas as pd
from great_expectations.data_context.types.base import ProgressBarsConfig

from features.io import ScanError
from features.quality import cohort_suites as cs
from features.quality.manifests import photo_set, scan_manifest
from features.quality.suites import QualityLimits, SuiteSpec, photo_expectations, scan_expectations
from features.quality.tables import cohort_tables, feature_tables

SUITES: dict[str, SuiteSpec] = {
    "scans": SuiteSpec("scans", ("file",), scan_expectations),
    "photos": SuiteSpec("photos", ("file",), photo_expectations),
    "cohort_patients": SuiteSpec("patients", ("patient_id",), cs.cohort_patient_expectations),
    "cohort_wounds": SuiteSpec("wounds", ("wound_id",), cs.cohort_wound_expectations),
    "cohort_visits": SuiteSpec("visits", ("wound_id", "week"), cs.visit_expectations),
    "cohort_outcomes": SuiteSpec("outcomes", ("wound_id",), cs.outcome_expectations),
    "cohort_oracle": SuiteSpec("oracle", ("wound_id",), cs.oracle_expectations),
    "cohort_truth": SuiteSpec("truth", ("wound_id",), cs.truth_expectations),
    "features_patient_risk_factors": SuiteSpec("patient_risk_factors", ("patient_id",), cs.risk_factor_expectations),
    "features_wound_profile": SuiteSpec("wound_profile", ("wound_id",), cs.wound_profile_expectations),
    "features_wound_history": SuiteSpec("wound_history", ("wound_id", "week"), cs.history_expectations),
    "features_entity_rows": SuiteSpec("entity_rows", ("wound_id", "prediction_week"), cs.entity_row_expectations),
}
# the data/ layout: part -> (folder under the data dir, its suites)
PARTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "scans": ("phantoms", ("scans",)),
    "photos": ("photos", ("photos",)),
    "cohort": ("cohort", tuple(n for n in SUITES if n.startswith("cohort_"))),
    "features": ("features/tables", tuple(n for n in SUITES if n.startswith("features_"))),
}
EXAMPLES_KEPT = 20  # offending values GE keeps per expectation (partial_unexpected_count)


class DataQualityError(ScanError):
    """Data that failed a quality suite; the message names the suites and the report to read."""


@dataclass
class Failure:
    """One unmet expectation: what was expected, why it matters, and the rows that broke it."""

    expectation: str  # GE type, e.g. expect_column_values_to_be_between
    arguments: dict  # its kwargs: column(s), bounds, value set, row condition
    why: str
    unexpected_count: int | None = None
    element_count: int | None = None
    examples: list[dict] = field(default_factory=list)  # offending rows: id columns and values
    observed: object = None  # for table-level expectations (row counts, existence)
    error: str | None = None  # the exception GE caught, e.g. a missing column


@dataclass
class Result:
    """A suite's outcome on one table, with GE's own JSON result for the artifact."""

    suite: str
    success: bool
    rows: int
    evaluated: int
    failures: list[Failure]
    gx_result: dict


def validate(name: str, frame: pd.DataFrame, limits: QualityLimits | None = None) -> Result:
    """Run the suite `name` (a key of SUITES) on `frame`."""
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; use one of {', '.join(SUITES)}")
    spec = SUITES[name]
    ids = [c for c in spec.id_columns if c in frame.columns]  # a dropped id column is reported, not fatal
    definition = _validation_definition(name, spec, limits or QualityLimits())
    outcome = definition.run(batch_parameters={"dataframe": frame}, result_format={
        "result_format": "SUMMARY", "unexpected_index_column_names": ids,
        "partial_unexpected_count": EXAMPLES_KEPT})
    raw = json_safe(outcome.to_json_dict())
    failures = [_failure(r) for r in raw["results"] if not r["success"]]
    return Result(name, bool(outcome.success), len(frame), len(raw["results"]), failures, raw)


def _validation_definition(name: str, spec: SuiteSpec, limits: QualityLimits) -> gx.ValidationDefinition:
    """A fresh ephemeral context per run (about 20 ms): no state carried between suites or calls."""
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)  # else a bar per run on stderr
    batch = (context.data_sources.add_pandas("coherency").add_dataframe_asset(spec.table)
             .add_batch_definition_whole_dataframe("whole_table"))
    suite = context.suites.add(gx.ExpectationSuite(name=name, expectations=spec.expectations(limits)))
    return context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))


def _failure(result: dict) -> Failure:
    config, found = result["expectation_config"], result.get("result") or {}
    arguments = {k: v for k, v in config["kwargs"].items() if k != "batch_id"}
    exception = result.get("exception_info") or {}
    if "raised_exception" not in exception:  # several metrics failed: GE keys their infos by metric
        exception = next(iter(exception.values()), {})
    return Failure(
        expectation=config["type"], arguments=arguments, why=config.get("description") or "",
        unexpected_count=found.get("unexpected_count"), element_count=found.get("element_count"),
        examples=found.get("partial_unexpected_index_list") or
        [{"value": v} for v in found.get("partial_unexpected_list") or []],
        observed=found.get("observed_value"),
        error=exception.get("exception_message") if exception.get("raised_exception") else None,
    )


def json_safe(value: object) -> object:
    """GE's JSON dict as plain Python: numpy scalars unwrapped, NaN and infinities null (strict JSON)."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ---------------------------------------------------------------------------------------------- the data folder


def load_tables(data_dir: str | Path, limits: QualityLimits | None = None) -> dict[str, pd.DataFrame]:
    """{suite name: checked frame} for every part of data_dir that is present."""
    limits, root = limits or QualityLimits(), Path(data_dir)
    tables: dict[str, pd.DataFrame] = {}
    if (root / PARTS["scans"][0]).is_dir():
        tables["scans"] = scan_manifest(root / PARTS["scans"][0], limits.max_points)
    if (root / PARTS["photos"][0] / "images").is_dir():
        tables["photos"] = photo_set(root / PARTS["photos"][0])
    for part, read in (("cohort", cohort_tables), ("features", feature_tables)):
        for name, frame in read(root / PARTS[part][0]).items():
            tables[f"{part}_{name}"] = frame
    return tables


def validate_data(data_dir: str | Path, out_dir: str | Path, limits: QualityLimits | None = None,
                  required: tuple[str, ...] = tuple(PARTS)) -> dict:
    """Run every suite on data_dir, write the reports to out_dir and return the summary.

    A part of data/ not in `required` may be absent (its suites are listed as skipped). Raises
    DataQualityError, after writing the reports, when a suite fails or a required table is missing.
    """
    from features.quality.report import write_reports

    unknown = sorted(set(required) - set(PARTS))
    if unknown:
        raise ValueError(f"unknown data parts {unknown}; use some of {', '.join(PARTS)}")
    start = time.perf_counter()
    tables = load_tables(data_dir, limits)
    loaded = time.perf_counter()
    results = {name: validate(name, frame, limits) for name, frame in tables.items()}
    required_suites = {s for part in required for s in PARTS[part][1]}
    missing = [s for s in SUITES if s in required_suites and s not in tables]
    seconds = {"tables": loaded - start, "validation": time.perf_counter() - loaded}
    summary = write_reports(results, missing, Path(data_dir), Path(out_dir), seconds)
    failed = [name for name, r in results.items() if not r.success] + missing
    if failed:
        raise DataQualityError(f"data quality: {len(failed)} suite(s) failed ({', '.join(failed)}); "
                               f"read {summary['report']}")
    return summary
