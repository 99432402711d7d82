"""Prognosis metrics on cases with known answers, and against brute-force definitions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from models.evaluate import (
    auroc,
    auroc_standard_error,
    binary_metrics,
    brier,
    concordance_index,
    expected_calibration_error,
    prognosis_report,
    reliability_table,
    slice_metrics,
)


def test_auroc_known_cases():
    y = np.array([0, 0, 1, 1])
    assert auroc(y, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert auroc(y, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert auroc(y, np.full(4, 0.5)) == 0.5
    assert auroc(y, np.array([0.1, 0.4, 0.35, 0.8])) == 0.75  # one of four pairs out of order
    assert auroc(y, np.array([0.1, 0.5, 0.5, 0.8])) == 0.875  # one tied pair counts half
    assert np.isnan(auroc(np.ones(3), np.array([0.1, 0.2, 0.3])))


def test_auroc_equals_the_pairwise_definition():
    rng = np.random.default_rng(0)
    y = (rng.random(300) < 0.4).astype(float)
    score = np.round(rng.normal(y, 1.0), 1)  # rounded: many ties
    pos, neg = score[y == 1], score[y == 0]
    pairwise = ((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])).mean()
    assert auroc(y, score) == pytest.approx(pairwise, abs=1e-12)


def test_auroc_standard_error_matches_the_spread_over_repeated_samples():
    rng = np.random.default_rng(2)
    shift = 1.8  # binormal, equal variances: AUROC = Phi(shift / sqrt(2)) = 0.90
    areas = [auroc(np.r_[np.zeros(50), np.ones(50)], np.r_[rng.normal(0, 1, 50), rng.normal(shift, 1, 50)])
             for _ in range(400)]
    assert auroc_standard_error(0.90, 50, 50) == pytest.approx(np.std(areas), rel=0.2)
    assert auroc_standard_error(0.90, 500, 500) < auroc_standard_error(0.90, 50, 50)


def test_brier_known_values():
    assert brier(np.array([0, 1]), np.array([0.0, 1.0])) == 0.0
    assert brier(np.array([0, 1]), np.array([0.5, 0.5])) == 0.25
    assert brier(np.array([1, 1, 0]), np.array([0.9, 0.6, 0.3])) == pytest.approx((0.01 + 0.16 + 0.09) / 3)


def test_calibration_error_known_values():
    y = np.array([1, 0, 0, 0, 0])
    assert expected_calibration_error(y, np.full(5, 0.2)) == pytest.approx(0.0)
    assert expected_calibration_error(y, np.full(5, 0.5)) == pytest.approx(0.3)
    # two bins, each off by 0.1 the same way
    y2, p2 = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1]), np.array([0.1] * 5 + [0.9] * 5)
    assert expected_calibration_error(y2, p2) == pytest.approx(0.1)


def test_calibrated_random_predictions_have_small_ece_and_miscalibrated_large():
    rng = np.random.default_rng(1)
    p = rng.random(20_000)
    y = (rng.random(20_000) < p).astype(float)
    assert expected_calibration_error(y, p) < 0.02
    assert expected_calibration_error(y, expit(3 * (p - 0.5) * 4)) > 0.1  # over-confident


def test_reliability_table_covers_every_prediction():
    p = np.array([0.0, 0.05, 0.55, 0.99, 1.0])
    table = reliability_table(np.array([0, 0, 1, 1, 1]), p, bins=10)
    assert sum(row["n"] for row in table) == 5
    assert table[-1]["upper"] == 1.0 and table[-1]["n"] == 2  # p = 1 falls in the last bin
    assert all(row["lower"] <= row["mean_predicted"] <= row["upper"] for row in table)


def test_bad_inputs_raise():
    with pytest.raises(ValueError):
        auroc(np.array([0, 1, np.nan]), np.array([0.1, 0.2, 0.3]))  # unknown labels must be dropped first
    with pytest.raises(ValueError):
        brier(np.array([0, 1]), np.array([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError):
        reliability_table(np.array([0, 1]), np.array([0.1, 0.2]), bins=0)


def test_concordance_known_cases_and_censoring():
    weeks = np.array([2.0, 4.0, 6.0, 8.0])
    closed = np.array([True, True, True, True])
    assert concordance_index(weeks, closed, weeks) == 1.0
    assert concordance_index(weeks, closed, -weeks) == 0.0
    # only the wound closed at week 2 anchors pairs; the pair of two censored wounds never counts
    closed = np.array([True, False, False, False])
    censored_weeks = np.array([2.0, 3.0, 5.0, 7.0])
    assert concordance_index(censored_weeks, closed, np.array([1.0, 9.0, 5.0, 3.0])) == 1.0
    assert concordance_index(censored_weeks, closed, np.array([1.0, 0.5, 9.0, 9.0])) == pytest.approx(2 / 3)
    # same week, one closed and one still open: the closed one came first
    assert concordance_index(np.array([4.0, 4.0]), np.array([True, False]), np.array([3.0, 5.0])) == 1.0
    assert concordance_index(np.array([4.0, 4.0]), np.array([True, False]), np.array([3.0, 3.0])) == 0.5
    assert np.isnan(concordance_index(np.array([4.0, 6.0]), np.array([False, False]), np.array([1.0, 2.0])))


def test_metrics_per_slice():
    y = np.array([0, 1, 0, 1, 1, 1])
    p = np.array([0.2, 0.8, 0.3, 0.7, 0.6, 0.9])
    report = slice_metrics(y, {"model": p}, {"etiology": np.array(["a", "a", "a", "a", "b", "b"])})
    assert report["etiology"]["a"]["n"] == 4 and report["etiology"]["a"]["model"]["auroc"] == 1.0
    assert np.isnan(report["etiology"]["b"]["model"]["auroc"])  # one outcome only
    assert report["etiology"]["b"]["model"]["brier"] == pytest.approx((0.16 + 0.01) / 2)


def test_report_uses_the_rows_every_predictor_covers():
    y = np.array([0.0, 1.0, np.nan, 1.0, 0.0])
    predictions = {"model": np.array([0.1, 0.9, 0.5, 0.8, 0.3]), "rule": np.array([0.09, 0.58, 0.58, np.nan, 0.09])}
    report = prognosis_report(y, predictions, {"site": np.array(["x"] * 5)})
    assert report["n"] == 3 and report["models"]["rule"]["n"] == 3
    assert report["models"]["model"] == binary_metrics(np.array([0, 1, 0]), np.array([0.1, 0.9, 0.3]))
