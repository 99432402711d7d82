"""The champion/challenger gate against a real MLflow SQLite store in a temporary folder."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def store(tmp_path, monkeypatch):
    from models import registry

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    registry.use_store(tmp_path / "mlruns")
    return tmp_path / "mlruns"


def _logged_model(store, seed: int) -> str:
    """Fit and log a tiny classifier; returns its model URI."""
    import mlflow
    from sklearn.linear_model import LogisticRegression

    from models import registry

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(40, 3))
    model = LogisticRegression().fit(x, x[:, 0] > 0)
    with mlflow.start_run(experiment_id=registry.experiment_id("registry-test", store)):
        info = mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"])
    return info.model_uri


def test_gate_promotes_first_refuses_worse_promotes_better(store):
    from models import registry

    tags = registry.provenance()
    assert set(tags) == {"data_version", "git_commit", "params"}

    first = registry.register(_logged_model(store, 0), "toy", {"auroc": 0.80}, tags)
    decision = registry.gate("toy", first, "auroc", 0.80, None)
    assert decision.promoted and registry.alias_version("toy", registry.CHAMPION) == first

    worse = registry.register(_logged_model(store, 1), "toy", {"auroc": 0.70}, tags)
    decision = registry.gate("toy", worse, "auroc", 0.70, 0.80)
    assert not decision.promoted and "does not beat" in decision.reason
    assert registry.alias_version("toy", registry.CHAMPION) == first
    assert registry.alias_version("toy", registry.CHALLENGER) == worse

    better = registry.register(_logged_model(store, 2), "toy", {"auroc": 0.90}, tags)
    assert registry.gate("toy", better, "auroc", 0.90, 0.80).promoted
    rows = registry.versions("toy")
    assert [r["version"] for r in rows] == [better, worse, first]
    assert registry.CHAMPION in rows[0]["aliases"] and rows[1]["metrics"] == {"auroc": 0.70}
    assert rows[0]["data_version"] == tags["data_version"]


def test_lower_is_better_metrics_gate_the_other_way(store):
    from models import registry

    tags = {"data_version": "x", "git_commit": "y", "params": "{}"}
    first = registry.register(_logged_model(store, 0), "loss-model", {"brier": 0.20}, tags)
    registry.gate("loss-model", first, "brier", 0.20, None, higher_is_better=False)
    second = registry.register(_logged_model(store, 1), "loss-model", {"brier": 0.25}, tags)
    assert not registry.gate("loss-model", second, "brier", 0.25, 0.20, higher_is_better=False).promoted
    assert registry.alias_version("missing-model", registry.CHAMPION) is None


def test_a_second_store_is_not_shadowed_by_the_first(tmp_path, monkeypatch):
    # mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI; that must not pin every later store to the first
    from models import registry

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    first = registry.use_store(tmp_path / "a")
    second = registry.use_store(tmp_path / "b")
    assert first.endswith("/a/mlflow.db") and second.endswith("/b/mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")  # a user's server still wins
    assert registry.tracking_uri(tmp_path / "c") == "http://mlflow.example:5000"
