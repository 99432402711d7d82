"""End to end on a small cohort through Feast: both models, the fusion, and the report beside the rule and oracle."""

from __future__ import annotations

import json

import pytest
import torch

from features.cohort import CohortConfig, generate_cohort
from models.gbm import GBMConfig
from models.lit.visits import SequenceTrainParams
from models.prognosis import (
    METRICS_FILE,
    SEQUENCE_CHECKPOINT,
    PrognosisSplit,
    evaluate_saved,
    train_from_params,
    train_prognosis,
)

torch.set_num_threads(1)
SPLIT = PrognosisSplit(seed=1, val_fraction=0.2, test_fraction=0.3)  # a larger test share: a tighter AUROC


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("prognosis_data")
    generate_cohort(CohortConfig(n_patients=300, seed=11), root / "cohort", root / "features" / "tables")
    return root


@pytest.fixture(scope="module")
def both(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("prognosis_models")
    sequence = SequenceTrainParams(epochs=30, patience=5, batch_size=64)
    metrics = train_prognosis(data_dir, out, SPLIT, GBMConfig(rounds=200), sequence, enable_progress_bar=False)
    return out, metrics


def _within_noise_of_oracle(report: dict, model: str) -> bool:
    oracle = report["models"]["oracle"]
    return report["models"][model]["auroc"] <= oracle["auroc"] + 3 * oracle["auroc_se"]


def test_ensemble_beats_sheehans_rule_at_week_4_and_not_the_oracle(both):
    _, metrics = both
    week4 = metrics["week_4"]
    assert week4["n"] > 60
    assert week4["models"]["ensemble"]["auroc"] > week4["models"]["sheehan"]["auroc"]
    assert week4["models"]["ensemble"]["auroc"] > week4["models"]["gbm"]["auroc"]  # four weeks of visits help
    assert _within_noise_of_oracle(week4, "ensemble")
    assert _within_noise_of_oracle(metrics["week_0"], "ensemble")
    assert set(week4["slices"]) == {"etiology", "body_site"}


def test_everything_is_written(both):
    out, metrics = both
    for name in ("gbm_healed_12w.json", "gbm_weeks_to_closure.json", "sequence-best.ckpt", "fusion.json"):
        assert (out / name).is_file(), name
    assert json.loads((out / METRICS_FILE).read_text())["week_4"]["n"] == metrics["week_4"]["n"]
    assert set(json.loads((out / "fusion.json").read_text())) == {"0", "2", "4"}
    assert set(metrics["weeks_to_closure_c_index"]) == {"gbm", "sequence_w0", "sequence_w2", "sequence_w4"}


def test_models_trained_apart_evaluate_the_same(both, data_dir, tmp_path):
    out, metrics = both
    again = evaluate_saved(data_dir, out, out / SEQUENCE_CHECKPOINT, tmp_path, SPLIT)
    assert again["fusion"] == metrics["fusion"]
    for name in ("gbm", "sequence", "ensemble", "sheehan", "oracle"):
        assert again["week_4"]["models"][name]["auroc"] == metrics["week_4"]["models"][name]["auroc"]


def test_gbm_alone_is_reported_beside_the_references(data_dir, tmp_path):
    metrics = train_prognosis(data_dir, tmp_path, SPLIT, gbm=GBMConfig(rounds=100))
    assert set(metrics["week_0"]["models"]) == {"gbm", "oracle"}
    assert set(metrics["week_4"]["models"]) == {"gbm", "sheehan", "oracle"}
    assert "fusion" not in metrics and not (tmp_path / "fusion.json").exists()


def test_params_sections_drive_a_run(data_dir, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("prognosis: {seed: 1, val_fraction: 0.2, test_fraction: 0.3}\n"
                      "gbm: {rounds: 50, profiles: {full: {rounds: 5000}}}\n")
    metrics = train_from_params("gbm", data_dir, tmp_path / "out", "demo", params)
    assert metrics["split"]["test_fraction"] == 0.3 and "gbm" in metrics["training_seconds"]
    config = json.loads((tmp_path / "out" / "gbm_config.json").read_text())
    assert config["rounds"] == 50


def test_nothing_to_train_raises(data_dir, tmp_path):
    with pytest.raises(ValueError):
        train_prognosis(data_dir, tmp_path, SPLIT)
    with pytest.raises(ValueError):
        train_from_params("pointnet", data_dir, tmp_path)
