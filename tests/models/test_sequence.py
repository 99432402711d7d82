"""Visit Transformer: shapes, padding, bad hyperparameters, censored hazard likelihood, encoding, fast_dev_run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from models.data.visits import (
    STATIC_NAMES,
    VISIT_NAMES,
    VisitDataModule,
    encode_sequences,
    padded_lists,
    patient_split,
    prediction_rows,
)
from models.lit.visits import SequenceTrainParams, VisitPrognosis, hazard_nll, survival_summary, train_visit_model
from models.sequence import SequenceConfig, VisitTransformer
from tests.models.cohort_frames import cohort_tables, sequence_frame

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def frame():
    return sequence_frame(cohort_tables(80, seed=5))


def _net(**overrides) -> VisitTransformer:
    torch.manual_seed(0)
    return VisitTransformer(SequenceConfig(static_features=6, visit_features=4, **overrides)).eval()


def test_forward_shapes():
    net = _net(horizon_weeks=24)
    padding = torch.tensor([[False, False, True], [False, False, False]])
    logit, hazards = net(torch.randn(2, 6), torch.randn(2, 3, 4), padding)
    assert logit.shape == (2,) and hazards.shape == (2, 24)


def test_padded_visits_do_not_change_the_output():
    net = _net()
    static, visits = torch.randn(3, 6), torch.randn(3, 5, 4)
    padding = torch.tensor([[False] * 2 + [True] * 3, [False] * 5, [False] + [True] * 4])
    scrambled = torch.where(padding[..., None], torch.randn_like(visits) * 100, visits)
    with torch.no_grad():
        for a, b in zip(net(static, visits, padding), net(static, scrambled, padding), strict=True):
            torch.testing.assert_close(a, b)
        # and the same wound without its padding columns gives the same answer
        short = net(static[:1], visits[:1, :2], padding[:1, :2])
        torch.testing.assert_close(short[0], net(static, visits, padding)[0][:1])


@pytest.mark.parametrize("bad", [{"d_model": 30, "heads": 4}, {"layers": 0}, {"dropout": 1.0}, {"dropout": -0.1},
                                 {"static_features": 0}, {"horizon_weeks": 0}, {"max_visits": 0}])
def test_bad_config_raises(bad):
    with pytest.raises(ValueError):
        SequenceConfig(**{"static_features": 6, "visit_features": 4, **bad})


def test_too_many_visits_raises():
    net = _net(max_visits=3)
    with pytest.raises(ValueError, match="max_visits"):
        net(torch.randn(1, 6), torch.randn(1, 4, 4), torch.zeros(1, 4, dtype=torch.bool))


def test_bad_training_hyperparameters_raise():
    with pytest.raises(ValueError):
        VisitPrognosis(SequenceConfig(6, 4).to_dict(), lr=0.0)
    with pytest.raises(ValueError):
        SequenceTrainParams(epochs=0)
    with pytest.raises(ValueError, match="d_modle"):
        SequenceTrainParams.from_params({"d_modle": 8})


def test_hazard_likelihood_matches_a_hand_computation():
    hazards = torch.full((2, 6), 0.2).logit()  # h = 0.2 every week
    weeks, closed = torch.tensor([3, 4]), torch.tensor([True, False])
    expected = -torch.tensor([2 * np.log(0.8) + np.log(0.2), 4 * np.log(0.8)], dtype=torch.float32)
    torch.testing.assert_close(hazard_nll(hazards, weeks, closed), expected)
    # censored: the smaller the hazard the likelier; closed at week 3 under a constant h: (1 - h)^2 h, best at 1/3
    def nll(h: float, which: int) -> float:
        return hazard_nll(torch.full((1, 6), h).logit(), weeks[which:which + 1], closed[which:which + 1]).item()

    assert nll(0.1, 1) < nll(0.2, 1) < nll(0.5, 1)
    assert nll(1 / 3, 0) < min(nll(0.25, 0), nll(0.45, 0))


def test_survival_summary_of_a_constant_hazard():
    summary = survival_summary(torch.full((1, 24), 0.1).logit(), horizon=12)
    torch.testing.assert_close(summary["p_closed_by_horizon"], torch.tensor([1 - 0.9**12]))
    torch.testing.assert_close(summary["restricted_mean_weeks"], torch.tensor([sum(0.9**t for t in range(24))]))
    assert summary["median_weeks"].item() == 7  # 0.9^6 = 0.53 > 0.5 >= 0.9^7 = 0.48
    never = survival_summary(torch.full((1, 24), -20.0))
    assert torch.isinf(never["median_weeks"]).all() and never["restricted_mean_weeks"].item() == pytest.approx(24)


def test_padded_lists_and_encoding(frame):
    values, padding = padded_lists(pd.Series([np.array([1.0, 2.0]), np.array([3.0])]))
    np.testing.assert_array_equal(padding, [[False, False], [False, True]])
    np.testing.assert_array_equal(values[~padding], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError):
        padded_lists(pd.Series([np.array([1.0]), None]))
    arrays = encode_sequences(frame)
    n = len(frame)
    assert arrays.static.shape == (n, len(STATIC_NAMES)) and arrays.visits.shape[::2] == (n, len(VISIT_NAMES))
    lengths = (~arrays.padding).sum(1)
    np.testing.assert_array_equal(lengths, frame["week_history"].map(len))
    # truncated at the prediction time: the last real visit is at or before the prediction week
    last_week = arrays.visits[np.arange(n), lengths - 1, VISIT_NAMES.index("week")] * 12
    assert (last_week <= frame["prediction_week"].to_numpy() + 1e-6).all()
    assert np.isfinite(arrays.static).all() and np.isfinite(arrays.visits).all()
    assert (arrays.visits[arrays.padding] == 0).all()


def test_prediction_rows_shift_the_first_visit_stamp():
    rows = pd.DataFrame({"wound_id": ["W1", "W1"], "patient_id": ["P1", "P1"], "prediction_week": [0, 4],
                         "event_timestamp": pd.to_datetime(["2024-01-01 23:59:59", "2024-01-29 23:59:59"], utc=True)})
    out = prediction_rows(rows, (0, 2))
    assert out["prediction_week"].tolist() == [0, 2]
    assert (out["event_timestamp"].diff().iloc[1]) == pd.Timedelta(days=14)


def test_patient_split_is_deterministic_and_keeps_patients_whole(frame):
    split = patient_split(frame["patient_id"], 7, 0.2, 0.2)
    np.testing.assert_array_equal(split, patient_split(frame["patient_id"], 7, 0.2, 0.2))
    assert (pd.Series(split).groupby(frame["patient_id"].to_numpy()).nunique() == 1).all()
    assert set(split) == {"train", "val", "test"}
    # a patient's split does not depend on who else is in the cohort
    np.testing.assert_array_equal(patient_split(frame["patient_id"][:10], 7, 0.2, 0.2), split[:10])
    with pytest.raises(ValueError):
        patient_split(frame["patient_id"], 7, 0.5, 0.5)


def test_fast_dev_run(frame, tmp_path):
    data = VisitDataModule(frame, batch_size=16, seed=1)
    params = SequenceTrainParams(d_model=16, heads=2, layers=1, feedforward=16, epochs=1)
    model = train_visit_model(data, tmp_path, params, fast_dev_run=True, enable_progress_bar=False)
    static, visits, padding, *_ = next(iter(data.val_dataloader()))
    logit, hazards = model(static, visits, padding)
    assert logit.shape == (len(static),) and hazards.shape == (len(static), 24)
    assert torch.isfinite(logit).all() and torch.isfinite(hazards).all()
