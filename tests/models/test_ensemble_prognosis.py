"""Prognosis fusion: recovers known stacking weights and turns miscalibrated inputs into calibrated output."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from models.ensemble import PrognosisFusion, fit_prognosis_fusion, fuse_prognosis
from models.evaluate import auroc, expected_calibration_error


def synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A true logit z; a blurred, under-confident model; an over-confident, shifted one; outcomes ~ Bernoulli."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 2.0, n)
    p_gbm = expit(0.5 * (z + rng.normal(0.0, 1.5, n)))
    p_seq = expit(2.0 * z + 1.0)
    return p_gbm, p_seq, (rng.random(n) < expit(z)).astype(float)


def test_recovers_the_weights_that_make_the_sharp_model_calibrated():
    p_gbm, p_seq, y = synthetic(20_000, seed=0)
    params = fit_prognosis_fusion(p_gbm, p_seq, y)
    # logit p_seq = 2 z + 1, so z = 0.5 logit p_seq - 0.5, and p_gbm adds nothing once p_seq is known
    assert params.weight_sequence == pytest.approx(0.5, abs=0.05)
    assert params.intercept == pytest.approx(-0.5, abs=0.1)
    assert params.weight_gbm == pytest.approx(0.0, abs=0.05)


def test_fused_probability_is_calibrated_on_new_data():
    params = fit_prognosis_fusion(*synthetic(5_000, seed=1))
    p_gbm, p_seq, y = synthetic(5_000, seed=2)
    fused = fuse_prognosis(params, p_gbm, p_seq)
    assert fused.shape == y.shape and ((fused > 0) & (fused < 1)).all()
    ece = expected_calibration_error(y, fused)
    assert ece < 0.03
    assert ece < expected_calibration_error(y, p_gbm) and ece < expected_calibration_error(y, p_seq)
    assert auroc(y, fused) > auroc(y, p_seq) - 0.005  # nearly a monotone recalibration of the better model


def test_both_models_get_weight_when_each_carries_information():
    rng = np.random.default_rng(3)
    first, second = rng.normal(size=(2, 8_000))
    y = (rng.random(8_000) < expit(first + second)).astype(float)
    params = fit_prognosis_fusion(expit(first), expit(second), y)
    assert params.weight_gbm == pytest.approx(1.0, abs=0.15) and params.weight_sequence == pytest.approx(1.0, abs=0.15)


def test_certain_inputs_stay_finite():
    params = PrognosisFusion(intercept=-0.2, weight_gbm=0.1, weight_sequence=1.1)
    fused = fuse_prognosis(params, np.array([0.3, 0.3]), np.array([1.0, 0.0]))
    assert np.isfinite(fused).all() and fused[0] > 0.99 and fused[1] < 0.01


def test_round_trip_through_a_dict():
    params = PrognosisFusion(0.1, 0.2, 0.3)
    assert PrognosisFusion.from_dict(params.to_dict()) == params


@pytest.mark.parametrize("args", [
    (np.array([0.2, 0.4]), np.array([0.2]), np.array([0.0, 1.0])),  # lengths differ
    (np.array([0.2, 0.4]), np.array([0.3, 0.6]), np.array([1.0, 1.0])),  # one outcome only
    (np.array([0.2, np.nan]), np.array([0.3, 0.6]), np.array([0.0, 1.0])),  # not a probability
    (np.array([0.2, 0.4]), np.array([0.3, 0.6]), np.array([0.0, 0.5])),  # not a label
])
def test_bad_inputs_raise(args):
    with pytest.raises(ValueError):
        fit_prognosis_fusion(*args)
