"""The cohort tables (data/cohort) and the Feast feature tables (data/features/tables) as checked frames.

Each table is read as written and given a few pandas-computed columns for the checks that span rows or
tables (visit order per wound, ids known to the parent table, history lengths), so that every check is a
plain column expectation whose failures name the offending rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

COHORT_TABLES = ("patients", "wounds", "visits", "outcomes", "oracle", "truth")
FEATURE_TABLES = ("patient_risk_factors", "wound_profile", "wound_history", "entity_rows")


def read_tables(folder: str | Path, names: tuple[str, ...]) -> dict[str, pd.DataFrame]:
    """{name: frame} for each NAME.parquet present in folder (absent tables are left out)."""
    folder = Path(folder)
    return {name: pd.read_parquet(folder / f"{name}.parquet") for name in names
            if (folder / f"{name}.parquet").is_file()}


def cohort_tables(folder: str | Path) -> dict[str, pd.DataFrame]:
    """The cohort's tables with the cross-row and cross-table columns its suites check."""
    tables = read_tables(folder, COHORT_TABLES)
    patients = _ids(tables.get("patients"), "patient_id")
    wounds = _ids(tables.get("wounds"), "wound_id")
    if "wounds" in tables:
        tables["wounds"] = with_known_ids(tables["wounds"], "patient_id", patients)
    if "visits" in tables:
        tables["visits"] = with_visit_order(with_known_ids(tables["visits"], "wound_id", wounds))
    for name in ("outcomes", "oracle", "truth"):
        if name in tables:
            tables[name] = with_known_ids(tables[name], "wound_id", wounds)
    return tables


def feature_tables(folder: str | Path) -> dict[str, pd.DataFrame]:
    """The Feast tables and entity rows with the columns their suites check."""
    tables = read_tables(folder, FEATURE_TABLES)
    wounds = _ids(tables.get("wound_profile"), "wound_id")
    if "wound_profile" in tables:
        tables["wound_profile"] = with_known_ids(tables["wound_profile"], "patient_id",
                                                 _ids(tables.get("patient_risk_factors"), "patient_id"))
    if "wound_history" in tables:
        history = with_visit_order(with_known_ids(tables["wound_history"], "wound_id", wounds))
        tables["wound_history"] = with_history_lengths(history)
    if "entity_rows" in tables:
        tables["entity_rows"] = with_known_ids(tables["entity_rows"], "wound_id", wounds)
    return tables


def _ids(frame: pd.DataFrame | None, column: str) -> pd.Index | None:
    return None if frame is None or column not in frame else pd.Index(frame[column].dropna().unique())


def with_known_ids(frame: pd.DataFrame, column: str, known: pd.Index | None) -> pd.DataFrame:
    """Add `{column}_known`: whether the id appears in the parent table (None when there is no parent)."""
    if column not in frame:
        return frame
    flags = None if known is None else frame[column].isin(known)
    return frame.assign(**{f"{column}_known": flags})


def with_visit_order(visits: pd.DataFrame) -> pd.DataFrame:
    """Add per-wound steps in file order: weeks and visit indices since the wound's previous row.

    Null on each wound's first row. Computed in the order the table is stored, because a consumer
    that reads the rows in order (a sequence model's history) relies on that order.
    """
    if not {"wound_id", "week", "visit_index"} <= set(visits.columns):
        return visits
    by_wound = visits.groupby("wound_id", sort=False)
    return visits.assign(weeks_since_previous=by_wound["week"].diff(),
                         visit_index_step=by_wound["visit_index"].diff())


def with_history_lengths(history: pd.DataFrame) -> pd.DataFrame:
    """Replace each history-list column by its length; add the number of visits so far (visit_index + 1).

    The lists themselves are dropped: GE fingerprints every frame it validates and pickles list cells to
    do so (about 2 s on the demo table), and the checks only need the lengths.
    """
    lists = [c for c in history.columns if c.endswith("_history")]
    if "visit_index" not in history:
        return history
    lengths = {f"{c}_length": history[c].map(lambda v: np.nan if v is None else len(v)) for c in lists}
    return history.drop(columns=lists).assign(visits_so_far=history["visit_index"] + 1, **lengths)
