"""The transformer without a server: the wound's features from a real (small) Feast store, and how the predictor's
answers become the client's errors."""

from __future__ import annotations

import contextvars
from datetime import UTC, datetime

import httpx
import pytest
from kserve import PredictorConfig, context
from kserve.errors import InferenceError, InvalidInput, ModelNotReady

from serving.assessment import PROGNOSIS_MEASUREMENTS
from serving.settings import ServingSettings
from serving.transformer import MEASURED_NOW, Transformer, _predictor_error


def _loaded(**kwargs) -> Transformer:
    """A loaded transformer, its predictor address set the way kserve's ModelServer sets it."""
    context.set_predictor_config(PredictorConfig("127.0.0.1:9", "v2"))
    transformer = Transformer("coherency", ServingSettings(), **kwargs)
    assert transformer.ready is False and transformer.load() is True
    return transformer


def small_store(folder, seed: int):
    """A materialised SQLite feature store of a six-patient cohort in `folder`; returns (cohort, store)."""
    from features.cohort import CohortConfig, simulate_cohort, write_feature_tables
    from features.store import apply, materialize, open_store

    cohort = simulate_cohort(CohortConfig(n_patients=6, seed=seed, recruitment_weeks=4, start_date="2024-01-01"))
    write_feature_tables(cohort, folder / "tables")
    store = open_store(data_dir=folder, online="sqlite")
    apply(store)
    materialize(store, datetime(2024, 3, 15, tzinfo=UTC))
    return cohort, store


def test_known_wounds_get_their_first_visit_features_and_unknown_ones_none(tmp_path):
    cohort, _ = small_store(tmp_path, seed=7)
    transformer = contextvars.copy_context().run(_loaded, feature_data=tmp_path)
    wound = str(cohort.wounds["wound_id"].iloc[0])
    history = transformer.history(wound)
    assert history["wound_id"] == wound and history["patient_id"] and "age" in history
    assert not set(MEASURED_NOW) & set(history)  # this scan's measurements fill them
    assert transformer.history("W-unknown") is None
    assert transformer.history(42) is None
    assert contextvars.copy_context().run(_loaded).history(wound) is None  # no store configured


def test_the_scan_measurements_the_prognosis_needs_are_the_ones_left_out():
    assert set(MEASURED_NOW) == set(PROGNOSIS_MEASUREMENTS)


@pytest.mark.parametrize(("status", "error", "expected"), [
    (400, InvalidInput, "refused the scan: bad points"), (404, InvalidInput, "refused"),
    (503, ModelNotReady, "not ready"), (500, InferenceError, "failed \\(500\\)"),
])
def test_predictor_errors_keep_their_class(status, error, expected):
    response = httpx.Response(status, json={"error": "bad points"})
    made = _predictor_error("coherency", response)
    assert isinstance(made, error)
    with pytest.raises(error, match=expected):
        raise made


def test_online_reads_survive_ipython_replacing_sqlites_timestamp_converter(tmp_path):
    # evidently and open3d import IPython, whose history module registers an ISO "timestamp" converter globally
    import sqlite3

    from features.store import online_features

    cohort, store = small_store(tmp_path, seed=11)
    sqlite3.register_converter("timestamp", lambda val: datetime.fromisoformat(val.decode()))  # what IPython does
    wound = str(cohort.wounds["wound_id"].iloc[0])
    row = online_features(store, [wound], "prognosis_gbm_v1").iloc[0]
    assert row["patient_id"] == cohort.wounds["patient_id"].iloc[0]
