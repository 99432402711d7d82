"""`coherency monitor`: the latest logged inferences against the training reference, with Evidently.

Two reports, each Evidently's DataDriftPreset: data drift over the input columns and prediction drift over the
output columns. The tests are pinned to p-value tests (KS for numbers, chi-square for categories) because
Evidently's default switches to distances above 1000 rows, and a window's verdict must not change meaning with
its size. A column drifted when its p-value is below `column_threshold`; an alert is a drifted share (Evidently's
DriftedColumnsCount) above `drift_share` in either report. With the default threshold of 0.001 and share of 0.05,
one drifted column of 14 is an alert and undrifted data raises one about 1.4% of the time: a drift often moves a
single column (a new sensor's noise, a darker skin), so a verdict that needs several would miss it.
"""

from __future__ import annotations

import sqlite3
import time
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from features.params import from_section, load_params
from serving.inference_features import METADATA_COLUMNS, NUMERIC_INPUTS, PREDICTION_COLUMNS

KINDS = {"data": NUMERIC_INPUTS + METADATA_COLUMNS, "prediction": PREDICTION_COLUMNS}
CATEGORICAL = set(METADATA_COLUMNS)
# tests whose score is a p-value (drift when below the threshold); distances would invert the comparison
P_VALUE_TESTS = {"ks", "chisquare", "z", "g_test", "fisher_exact", "mannw", "t_test", "anderson", "cramer_von_mises",
                 "epps_singleton", "kolmogorov_smirnov"}
MIN_COLUMN_VALUES = 5  # a column with fewer values on either side is not tested (and listed as skipped)


class MonitorInputError(ValueError):
    """No verdict is possible: no log, too few rows, no reference. The message says what to do."""


@dataclass(frozen=True)
class MonitorSettings:
    """The `monitoring` section of params.yaml."""

    log: str = "monitoring/inference.sqlite"
    reports: str = "monitoring/reports"
    workspace: str = "monitoring/workspace"
    window: int = 200
    reference: str = "monitoring/reference.parquet"
    phantoms_dir: str = "data/phantoms"
    min_rows: int = 30
    num_method: str = "ks"
    cat_method: str = "chisquare"
    column_threshold: float = 0.001
    drift_share: float = 0.05

    def __post_init__(self) -> None:
        for name in ("num_method", "cat_method"):
            if getattr(self, name) not in P_VALUE_TESTS:
                raise ValueError(f"monitoring.{name} must be a p-value test ({', '.join(sorted(P_VALUE_TESTS))}), "
                                 f"not {getattr(self, name)!r}")
        if not (0 < self.column_threshold < 1 and 0 <= self.drift_share < 1 and 1 <= self.min_rows <= self.window):
            raise ValueError("monitoring: need 0 < column_threshold < 1, 0 <= drift_share < 1 and "
                             "1 <= min_rows <= window")

    @classmethod
    def load(cls, profile: str = "demo", path: str | Path = "params.yaml") -> MonitorSettings:
        """From params.yaml's `monitoring` section with the profile's overrides."""
        return from_section(cls, load_params("monitoring", profile, path), "monitoring")


@dataclass
class DriftCheck:
    """One kind's verdict (the summary's JSON part) and the Evidently snapshot it came from (None: no columns)."""

    part: dict
    snapshot: Any | None


def prepare(frame: pd.DataFrame) -> pd.DataFrame:
    """Every monitored column, numbers as float (None -> NaN) and categories as text, whatever the log held."""
    out = pd.DataFrame(index=frame.index)
    for column in KINDS["data"] + KINDS["prediction"]:
        values = frame[column] if column in frame else pd.Series(None, index=frame.index, dtype=object)
        out[column] = values.astype(object).where(values.notna(), None) if column in CATEGORICAL else \
            pd.to_numeric(values, errors="coerce").astype(float)
    return out


def check_drift(reference: pd.DataFrame, current: pd.DataFrame, kind: str, settings: MonitorSettings) -> DriftCheck:
    """Evidently's drift report on `kind`'s columns (data or prediction) and its verdict."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    columns = [c for c in KINDS[kind] if min(reference[c].notna().sum(), current[c].notna().sum()) >= MIN_COLUMN_VALUES]
    skipped = [c for c in KINDS[kind] if c not in columns]
    part = {"columns": columns, "skipped": skipped, "threshold": settings.drift_share,
            "column_threshold": settings.column_threshold, "scores": {}, "method": {}, "drifted": [],
            "drift_share": 0.0, "alert": False}
    if not columns:
        return DriftCheck(part, None)
    definition = DataDefinition(numerical_columns=[c for c in columns if c not in CATEGORICAL],
                                categorical_columns=[c for c in columns if c in CATEGORICAL])
    preset = DataDriftPreset(columns=columns, num_method=settings.num_method, cat_method=settings.cat_method,
                             threshold=settings.column_threshold, drift_share=settings.drift_share)
    with warnings.catch_warnings():  # chi-square divides by zero for a category the reference lacks: p = 0, wanted
        warnings.simplefilter("ignore", RuntimeWarning)
        snapshot = Report([preset]).run(current_data=Dataset.from_pandas(current[columns], data_definition=definition),
                                        reference_data=Dataset.from_pandas(reference[columns],
                                                                           data_definition=definition),
                                        tags=[kind], name=f"{kind} drift")
    part.update(read_verdict(snapshot.dict(), settings.column_threshold, settings.drift_share))
    return DriftCheck(part, snapshot)


def read_verdict(result: dict, column_threshold: float, share_limit: float) -> dict:
    """Scores, drifted columns and share from an Evidently result dict, read by metric type (not position)."""
    scores, methods, share = {}, {}, None
    for metric in result["metrics"]:
        config = metric["config"]
        if config["type"].endswith(":ValueDrift"):
            scores[config["column"]] = float(metric["value"])
            methods[config["column"]] = config["method"]
        elif config["type"].endswith(":DriftedColumnsCount"):
            share = float(metric["value"]["share"])
    if share is None:
        raise RuntimeError("the Evidently report has no DriftedColumnsCount; is DataDriftPreset still its source?")
    drifted = [column for column, p in scores.items() if p < column_threshold]  # Evidently gives no boolean
    return {"scores": scores, "method": methods, "drifted": drifted, "drift_share": share,
            "alert": share > share_limit}


def summarise(checks: dict[str, DriftCheck], reference_rows: int, current: pd.DataFrame, window: int) -> dict:
    """The summary DriftCollector and the .prom file read: both kinds, the window and when it ran."""
    now = time.time()
    span = current["logged_at"] if "logged_at" in current else pd.Series(dtype=object)
    return {
        "checked_at": datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"), "checked_at_unix": now,
        "window": window, "current_rows": len(current), "reference_rows": reference_rows,
        "current_from": None if span.empty else str(span.min()), "current_to": None if span.empty else str(span.max()),
        **{kind: check.part for kind, check in checks.items()},
        "alert": any(check.part["alert"] for check in checks.values()),
    }


def alert_line(summary: dict) -> str:
    """The one log line of an alert: which kind, how much, which columns."""
    parts = [f"{kind} drift share {summary[kind]['drift_share']:.2f} > {summary[kind]['threshold']:.2f} "
             f"({', '.join(summary[kind]['drifted'])})" for kind in KINDS if summary[kind]["alert"]]
    return f"ALERT {'; '.join(parts)} over the last {summary['current_rows']} inferences"


# ---------------------------------------------------------------------------------------------- one check


def run_monitor(settings: MonitorSettings, window: int | None = None) -> dict:
    """Compare the latest `window` logged inferences with the reference; write reports, summary, .prom, snapshots.

    Raises MonitorInputError when no verdict is possible (no log, too few rows, no reference).
    """
    from serving.monitor_reference import load_reference
    from serving.monitor_workspace import add_snapshots
    from serving.monitoring import read_log, write_summary

    window = window or settings.window
    try:
        current = read_log(Path(settings.log), window)
    except FileNotFoundError as e:
        raise MonitorInputError(str(e)) from e
    except sqlite3.DatabaseError as e:
        raise MonitorInputError(f"{settings.log} is not a readable inference log ({e})") from e
    if len(current) < settings.min_rows:
        raise MonitorInputError(f"{len(current)} logged inference(s) in {settings.log}; at least "
                                f"{settings.min_rows} (monitoring.min_rows) are needed for a verdict")
    try:
        reference = load_reference(Path(settings.reference), Path(settings.phantoms_dir))
    except FileNotFoundError as e:
        raise MonitorInputError(f"no reference at {settings.reference}, and it cannot be built: {e}") from e
    except (OSError, ValueError) as e:  # a damaged parquet, or a phantom that cannot be read
        raise MonitorInputError(f"the reference {settings.reference} is unreadable ({e}); rebuild it with "
                                "`coherency monitor reference`") from e
    checks = {kind: check_drift(prepare(reference), prepare(current), kind, settings) for kind in KINDS}
    reports = Path(settings.reports)
    save_reports(reports, checks)
    summary = summarise(checks, len(reference), current, window)
    write_summary(reports, summary)
    write_prom(reports)
    summary["workspace_project"] = add_snapshots(Path(settings.workspace), {k: c.snapshot for k, c in checks.items()})
    return summary


def save_reports(reports_dir: Path, checks: dict[str, DriftCheck]) -> list[Path]:
    """Each kind's Evidently report as HTML and JSON (the latest only: the workspace keeps the history)."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, check in checks.items():
        if check.snapshot is None:
            continue
        html, js = reports_dir / f"{kind}_drift.html", reports_dir / f"{kind}_drift.json"
        check.snapshot.save_html(str(html))
        check.snapshot.save_json(str(js))
        written += [html, js]
    return written


def write_prom(reports_dir: Path) -> Path:
    """The summary's gauges in Prometheus text format, for node_exporter's textfile collector."""
    from prometheus_client import CollectorRegistry, write_to_textfile

    from serving.monitoring import DriftCollector

    registry = CollectorRegistry()
    registry.register(DriftCollector(reports_dir))
    path = reports_dir / "drift.prom"
    write_to_textfile(str(path), registry)  # atomic: writes a temporary file and renames it
    return path
