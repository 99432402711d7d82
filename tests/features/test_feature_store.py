"""The Feast repository on a tiny cohort: apply, materialize, point-in-time retrieval, online reads (SQLite, Redis)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from features.cohort import CohortConfig, feature_tables, simulate_cohort, write_feature_tables
from features.store import apply, materialize, online_features, open_store, training_frame

CUTOFF = datetime(2024, 3, 15, tzinfo=UTC)  # materialised up to here; the cohort's visits run on to July


@pytest.fixture(scope="module")
def cohort_tables(tmp_path_factory):
    cohort = simulate_cohort(CohortConfig(n_patients=40, seed=7, recruitment_weeks=4, start_date="2024-01-01"))
    data_dir = tmp_path_factory.mktemp("feature_data")
    write_feature_tables(cohort, data_dir / "tables")
    return data_dir, feature_tables(cohort)


@pytest.fixture(scope="module")
def sqlite_store(cohort_tables):
    data_dir, _ = cohort_tables
    store = open_store(data_dir=data_dir, online="sqlite")
    apply(store)
    materialize(store, CUTOFF)
    return store


def _latest_rows(history: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """The last history row at or before each entity row's timestamp (NaN where there is none)."""
    ordered = rows.reset_index(drop=True).assign(_row=lambda f: range(len(f))).sort_values("event_timestamp")
    merged = pd.merge_asof(ordered, history.sort_values("event_timestamp"), on="event_timestamp", by="wound_id",
                           direction="backward", allow_exact_matches=True)
    return merged.sort_values("_row").reset_index(drop=True)


def _probe_rows(history: pd.DataFrame, wounds: pd.DataFrame) -> pd.DataFrame:
    """Entity rows just before, at and between visits, and one before each wound's first visit, shuffled."""
    keys, stamps = history[["wound_id", "patient_id"]], history["event_timestamp"]
    probes = [stamps - pd.Timedelta(seconds=1), stamps, stamps + pd.Timedelta(days=3)]
    early = wounds[["wound_id", "patient_id"]].assign(event_timestamp=wounds["event_timestamp"] - pd.Timedelta(days=1))
    rows = pd.concat([keys.assign(event_timestamp=s) for s in probes] + [early], ignore_index=True)
    return rows.sample(frac=1.0, random_state=0)


def test_historical_features_are_point_in_time_correct(sqlite_store, cohort_tables):
    _, tables = cohort_tables
    history, wounds = tables["wound_history"], tables["wound_profile"]
    rows = _probe_rows(history, wounds)
    frame = training_frame(sqlite_store, rows, "prognosis_sequence_v1")
    expected = _latest_rows(history, rows)
    assert len(frame) == len(rows)  # duckdb keeps rows older than every feature row
    pd.testing.assert_series_equal(frame["wound_id"], expected["wound_id"])
    np.testing.assert_array_equal(frame["week"].to_numpy(float), expected["week"].to_numpy(float))
    before_first = expected["week"].isna().to_numpy()
    assert before_first.sum() == 2 * len(wounds)  # a day and a second before the first visit
    assert frame.loc[before_first, ["week", "age"]].isna().all().all()
    got = frame.loc[~before_first, "area_history"].map(list)
    want = expected.loc[~before_first, "area_history"].map(list)
    assert all(np.allclose(g, w) for g, w in zip(got, want, strict=True))


def test_gbm_service_reads_the_first_visit(sqlite_store, cohort_tables):
    _, tables = cohort_tables
    rows = tables["entity_rows"].query("prediction_week == 0")
    frame = training_frame(sqlite_store, rows, "prognosis_gbm_v1")
    first = tables["wound_history"].query("visit_index == 0").set_index("wound_id")
    np.testing.assert_allclose(frame["area_cm2"], first.loc[frame["wound_id"], "area_cm2"])
    pd.testing.assert_series_equal(frame["healed_12w"], rows["healed_12w"].reset_index(drop=True))
    assert {"age", "abi", "hba1c", "etiology", "depth_mm"} <= set(frame.columns)
    assert "area_history" not in frame.columns  # the gbm contract has no sequences


def _check_online_is_latest(store, tables) -> None:
    history = tables["wound_history"]
    wound_ids = sorted(history["wound_id"].unique())
    online = online_features(store, wound_ids, "prognosis_sequence_v1").set_index("wound_id")
    latest = history[history["event_timestamp"] <= CUTOFF].sort_values("event_timestamp").groupby("wound_id").last()
    assert len(latest) == len(wound_ids)  # every wound had a visit before the cut-off
    np.testing.assert_array_equal(online.loc[latest.index, "week"], latest["week"])
    assert all(np.allclose(online.at[w, "area_history"], latest.at[w, "area_history"]) for w in latest.index)
    patients = tables["patient_risk_factors"].set_index("patient_id")
    np.testing.assert_allclose(online.loc[latest.index, "abi"],
                               patients.loc[online.loc[latest.index, "patient_id"], "abi"])


def test_online_read_equals_latest_row_sqlite(sqlite_store, cohort_tables):
    _check_online_is_latest(sqlite_store, cohort_tables[1])


def test_unknown_online_store_is_refused(tmp_path):
    with pytest.raises(ValueError, match="online store"):
        open_store(data_dir=tmp_path, online="memcached")


@pytest.mark.redis
def test_online_read_equals_latest_row_redis(cohort_tables, tmp_path):
    import redis

    _, tables = cohort_tables
    project = f"coherency_test_{uuid.uuid4().hex[:10]}"  # the key suffix: nothing shared with other runs
    store = open_store(data_dir=tmp_path, online="redis", project=project)
    (tmp_path / "tables").mkdir()
    for name in ("patient_risk_factors", "wound_profile", "wound_history"):
        tables[name].to_parquet(tmp_path / "tables" / f"{name}.parquet", index=False)
    client = redis.Redis(host="127.0.0.1", port=6379, db=0)
    pattern = b"*" + project.encode()
    try:
        apply(store)
        materialize(store, CUTOFF)
        assert len(list(client.scan_iter(pattern))) > 0
        _check_online_is_latest(store, tables)
    finally:
        store.teardown()
    assert not list(client.scan_iter(pattern))
