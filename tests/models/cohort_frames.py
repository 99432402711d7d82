"""Training frames shaped like Feast's, built from a simulated cohort with pandas (no Feast import: fast).

The point-in-time join is a backward as-of merge on the visit stamps, as tests/features/test_feature_store.py
checks Feast's own retrieval against; test_prognosis.py runs the real Feast path end to end.
"""

from __future__ import annotations

import pandas as pd

from features.cohort import CohortConfig, feature_tables, simulate_cohort
from models.data.visits import prediction_rows

GBM_HISTORY = ["area_cm2", "volume_cm3", "depth_mm", "weeks_since_onset"]
SEQUENCE_HISTORY = ["week", "weeks_since_onset", "pct_area_reduction", "closed", "week_history", "area_history",
                    "depth_history", "volume_history"]


def cohort_tables(n_patients: int, seed: int) -> dict[str, pd.DataFrame]:
    return feature_tables(simulate_cohort(CohortConfig(n_patients=n_patients, seed=seed)))


def _join(tables: dict[str, pd.DataFrame], rows: pd.DataFrame, history: list[str]) -> pd.DataFrame:
    patients = tables["patient_risk_factors"].drop(columns="event_timestamp")
    wounds = tables["wound_profile"].drop(columns=["event_timestamp", "patient_id"])
    visits = tables["wound_history"][["wound_id", "event_timestamp", *history]].sort_values("event_timestamp")
    ordered = rows.reset_index(drop=True).assign(_row=lambda f: range(len(f))).sort_values("event_timestamp")
    joined = pd.merge_asof(ordered, visits, on="event_timestamp", by="wound_id", direction="backward")
    joined = joined.merge(patients, on="patient_id").merge(wounds, on="wound_id")
    return joined.sort_values("_row").drop(columns="_row").reset_index(drop=True)


def first_visit_frame(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Like training_frame(store, week-0 entity rows, "prognosis_gbm_v1")."""
    rows = tables["entity_rows"]
    return _join(tables, rows[rows["prediction_week"] == 0], GBM_HISTORY)


def sequence_frame(tables: dict[str, pd.DataFrame], weeks: tuple[int, ...] = (0, 2, 4)) -> pd.DataFrame:
    """Like training_frame(store, prediction_rows(entity rows, weeks), "prognosis_sequence_v1")."""
    return _join(tables, prediction_rows(tables["entity_rows"], weeks), SEQUENCE_HISTORY)
