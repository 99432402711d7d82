"""The feature tables Feast reads (parquet with `event_timestamp`), and the training entity rows.

patient_risk_factors: one row per patient, stamped at the first visit.
wound_profile: one row per wound, stamped at the first visit (what is known about the wound then).
wound_history: one row per visit, stamped at the visit, with the measurements so far as lists for sequence
models (a point-in-time lookup then returns the whole history up to the prediction time).
entity_rows: one row per wound and prediction week (0: first visit, 4: Sheehan's landmark) with the labels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from features.cohort.model import LANDMARK_WEEKS
from features.cohort.simulate import Cohort

FEATURE_TABLES = ("patient_risk_factors", "wound_profile", "wound_history")
PREDICTION_WEEKS = (0, LANDMARK_WEEKS)
HISTORY_COLUMNS = {"week": "week_history", "area_cm2": "area_history", "depth_mm": "depth_history",
                   "volume_cm3": "volume_history"}


def patient_risk_factors(cohort: Cohort) -> pd.DataFrame:
    """Patient risk factors, valid from the first visit on (HbA1c NaN for non-diabetics)."""
    p = cohort.patients
    return pd.DataFrame({
        "patient_id": p["patient_id"], "event_timestamp": p["first_visit_date"],
        "age": p["age"].astype("float32"), "sex": p["sex"], "diabetes": p["diabetes"],
        "hba1c": p["hba1c"].astype("float32"), "abi": p["abi"].astype("float32"), "smoker": p["smoker"],
        "bmi": p["bmi"].astype("float32"), "visit_interval_weeks": p["visit_interval_weeks"].astype("int64"),
    })


def wound_profile(cohort: Cohort) -> pd.DataFrame:
    """What is known about each wound at its first visit (the patient id too, to resolve it online)."""
    w = cohort.wounds
    return pd.DataFrame({
        "wound_id": w["wound_id"], "event_timestamp": w["first_visit_date"], "patient_id": w["patient_id"],
        "etiology": w["etiology"], "body_site": w["body_site"], "infection": w["infection"],
        "duration_weeks": w["duration_weeks"].astype("float32"),
    })


def wound_history(cohort: Cohort) -> pd.DataFrame:
    """One row per visit: the measurements, change since the first visit, and the history so far as lists."""
    v = cohort.visits.sort_values(["wound_id", "week"]).reset_index(drop=True)
    duration = cohort.wounds.set_index("wound_id")["duration_weeks"]
    baseline = v.groupby("wound_id")["area_cm2"].transform("first")
    table = pd.DataFrame({
        "wound_id": v["wound_id"], "patient_id": v["patient_id"], "event_timestamp": v["visit_date"],
        "visit_index": v["visit_index"],
        "week": v["week"].astype("int64"),
        "weeks_since_onset": (v["wound_id"].map(duration) + v["week"]).astype("float32"),
        "area_cm2": v["area_cm2"].astype("float32"), "volume_cm3": v["volume_cm3"].astype("float32"),
        "depth_mm": v["depth_mm"].astype("float32"),
        "pct_area_reduction": (100.0 * (1.0 - v["area_cm2"] / baseline)).astype("float32"),
        "closed": v["closed"],
    })
    for column, name in HISTORY_COLUMNS.items():
        table[name] = _running_lists(v["wound_id"].to_numpy(), v[column].to_numpy(np.float32))
    return table


def _running_lists(groups: np.ndarray, values: np.ndarray) -> list[np.ndarray]:
    """For rows sorted by group, the list of the group's values up to and including each row."""
    starts = np.r_[0, np.flatnonzero(groups[1:] != groups[:-1]) + 1]
    first = np.repeat(starts, np.diff(np.r_[starts, len(groups)]))
    return [values[f:i + 1] for f, i in zip(first, range(len(groups)), strict=True)]


def entity_rows(cohort: Cohort, weeks: tuple[int, ...] = PREDICTION_WEEKS) -> pd.DataFrame:
    """Training rows: (wound, patient, prediction time) with labels; the time is the end of the visit day.

    healed_12w is NaN where the label is unknown (lost unhealed before week 12): drop those rows for the
    12-week target; weeks_to_closure with `censored` serves a survival or censored-regression target.
    """
    w = cohort.wounds.merge(cohort.outcomes, on="wound_id")
    day = w["first_visit_date"].dt.normalize()
    frames = [pd.DataFrame({
        "wound_id": w["wound_id"], "patient_id": w["patient_id"],
        "event_timestamp": day + pd.Timedelta(days=7 * week + 1) - pd.Timedelta(seconds=1),
        "prediction_week": week, "healed_12w": w["healed_12w"], "healed": w["healed"],
        "weeks_to_closure": w["weeks_to_closure"], "censored": w["censored"],
    }) for week in weeks]
    return pd.concat(frames, ignore_index=True)


def feature_tables(cohort: Cohort) -> dict[str, pd.DataFrame]:
    """Every table Feast reads, and the entity rows, by name."""
    return {"patient_risk_factors": patient_risk_factors(cohort), "wound_profile": wound_profile(cohort),
            "wound_history": wound_history(cohort), "entity_rows": entity_rows(cohort)}


def write_feature_tables(cohort: Cohort, out_dir: str | Path) -> dict[str, Path]:
    """Write the feature tables and entity rows as parquet under out_dir; returns {name: path}."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, table in feature_tables(cohort).items():
        paths[name] = out_dir / f"{name}.parquet"
        table.to_parquet(paths[name], index=False)
    return paths
