"""The synthetic cohort: determinism, plausibility, censoring, closure bookkeeping, the oracle and Sheehan's rule."""

from __future__ import annotations

from math import log

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from features.cohort import CohortConfig, feature_tables, oracle_table, simulate_cohort
from features.cohort.model import (
    AREA_REFERENCE_CM2,
    CLOSURE_CM2,
    ETIOLOGY_PRIORS,
    HORIZON_WEEKS,
    area_prior,
    depth_prior,
    log_rate_mean,
)
from features.cohort.oracle import wound_covariates

CONFIG = CohortConfig(n_patients=3000, seed=11)


@pytest.fixture(scope="module")
def cohort():
    return simulate_cohort(CONFIG)


@pytest.fixture(scope="module")
def oracle(cohort):
    return oracle_table(cohort)


def test_same_seed_same_cohort_and_other_seed_differs():
    first, again = (simulate_cohort(CohortConfig(n_patients=150, seed=3)) for _ in range(2))
    for name in ("patients", "wounds", "visits", "outcomes", "truth"):
        pd.testing.assert_frame_equal(getattr(first, name), getattr(again, name))
    other = simulate_cohort(CohortConfig(n_patients=150, seed=4))
    assert not np.allclose(first.patients["age"], other.patients["age"])


@pytest.mark.parametrize("bad", [{"n_patients": 0}, {"follow_up_weeks": 11}, {"follow_up_weeks": 25},
                                 {"weekly_fraction": 1.5}, {"dropout_per_week": -0.1},
                                 {"start_date": "2024-13-01"}])
def test_bad_settings_raise(bad):
    with pytest.raises(ValueError):
        CohortConfig(**bad)


def test_from_params_reads_the_section():
    config = CohortConfig.from_params({"seed": 5, "n_patients": 10, "start_date": pd.Timestamp("2025-02-03").date(),
                                       "unknown_key": 1})
    assert (config.seed, config.n_patients, config.start_date) == (5, 10, "2025-02-03")


def test_patients_and_wounds_are_plausible(cohort):
    p, w = cohort.patients, cohort.wounds
    assert p["hba1c"].isna().to_numpy().tolist() == (~p["diabetes"]).tolist()
    assert p["abi"].between(0.3, 1.35).all() and p["bmi"].between(16, 60).all() and p["age"].between(30, 95).all()
    for etiology, prior in ETIOLOGY_PRIORS.items():
        assert set(w.loc[w["etiology"] == etiology, "body_site"]) <= set(prior.sites)
    diabetic = w["patient_id"].map(p.set_index("patient_id")["diabetes"])
    assert diabetic[w["etiology"] == "diabetic_foot_ulcer"].all()
    assert (w["onset_date"] < w["first_visit_date"]).all()
    assert 1.05 < len(w) / len(p) < 1.25  # about 15% of patients have a second wound
    assert (cohort.truth["log_area0"] > log(CLOSURE_CM2)).all()


def test_visits_follow_each_patient_schedule(cohort):
    v = cohort.visits.merge(cohort.patients[["patient_id", "visit_interval_weeks"]], on="patient_id")
    assert (v["week"] % v["visit_interval_weeks"] == 0).all()
    assert (v["week"] == v["visit_index"] * v["visit_interval_weeks"]).all()
    first = v["wound_id"].map(cohort.wounds.set_index("wound_id")["first_visit_date"])
    offset = v["visit_date"] - first - pd.to_timedelta(7 * v["week"], unit="D")
    assert offset.abs().max() <= pd.Timedelta(hours=3)
    assert v.groupby("wound_id")["visit_date"].apply(lambda d: d.is_monotonic_increasing).all()
    opened = v[~v["closed"]]
    assert (opened["area_cm2"] > 0).all() and (opened["depth_mm"] > 0).all() and (opened["volume_cm3"] > 0).all()


def test_censoring_proportions_are_sane(cohort):
    rate, follow_up = CONFIG.dropout_per_week, CONFIG.follow_up_weeks
    dropout = cohort.truth.drop_duplicates("dropout_weeks")["dropout_weeks"]
    assert abs((dropout < follow_up).mean() - (1 - np.exp(-rate * follow_up))) < 0.03
    o = cohort.outcomes
    assert (o["censored"] == ~o["healed"]).all()
    assert 0.03 < o["lost_to_follow_up"].mean() < (dropout < follow_up).mean()
    admin = o["censored"] & ~o["lost_to_follow_up"]
    assert (o.loc[admin, "last_visit_week"] == follow_up).all()
    unknown = o["censored"] & (o["last_visit_week"] < HORIZON_WEEKS)
    assert o["healed_12w"].isna().tolist() == unknown.tolist()
    assert 0.03 < unknown.mean() < 0.15
    assert 0.25 < o["healed_12w"].mean() < 0.55  # within the range of control arms in trials


def test_closure_times_are_consistent_with_visits(cohort):
    v = cohort.visits.sort_values(["wound_id", "week"])
    last = v.groupby("wound_id").tail(1).set_index("wound_id")
    before_last = v.groupby("wound_id").nth(-2).set_index("wound_id")["week"]
    o = cohort.outcomes.set_index("wound_id").join(cohort.truth.set_index("wound_id")["weeks_to_closure"],
                                                    rsuffix="_true")
    healed = o[o["healed"]]
    assert last.loc[healed.index, "closed"].all()
    assert (last.loc[healed.index, "week"] == healed["weeks_to_closure"]).all()
    assert (healed["weeks_to_closure_true"] <= healed["weeks_to_closure"]).all()
    assert (healed["weeks_to_closure_true"] > before_last.reindex(healed.index)).all()
    assert v.groupby("wound_id")["closed"].sum().max() == 1  # at most one closed visit: the last
    censored = o[o["censored"]]
    assert (censored["weeks_to_closure_true"] > censored["last_visit_week"]).all()
    truth_label = (o["weeks_to_closure_true"] <= HORIZON_WEEKS).astype(float)
    known = o["healed_12w"].notna()
    assert (o.loc[known, "healed_12w"] == truth_label[known]).all()


def _calibration_gaps(probability: np.ndarray, outcome: np.ndarray, bins: int = 10) -> np.ndarray:
    """Per probability decile: |observed rate - mean probability| in binomial standard errors."""
    order = np.argsort(probability)
    gaps = []
    for chunk in np.array_split(order, bins):
        p, y = probability[chunk].mean(), outcome[chunk].mean()
        gaps.append(abs(y - p) / np.sqrt(max(p * (1 - p), 1e-4) / len(chunk)))
    return np.asarray(gaps)


@pytest.mark.parametrize("column", ["oracle_p12_first_visit", "oracle_p12_week4"])
def test_oracle_is_calibrated_on_simulated_outcomes(cohort, oracle, column):
    gaps = _calibration_gaps(oracle[column].to_numpy(), cohort.truth["healed_12w"].to_numpy())
    assert gaps.max() < 3.5, gaps.round(2)


def test_oracle_beats_sheehan_rule_on_observed_labels(cohort, oracle):
    known = cohort.outcomes["healed_12w"].notna().to_numpy() & oracle["par4"].notna().to_numpy()
    y = cohort.outcomes["healed_12w"].to_numpy()[known]
    auc = {c: roc_auc_score(y, oracle[c].to_numpy()[known]) for c in
           ("oracle_p12_first_visit", "oracle_p12_week4", "par4", "sheehan_p12")}
    assert auc["oracle_p12_week4"] > auc["par4"] + 0.02 > auc["sheehan_p12"] + 0.02, auc
    assert auc["oracle_p12_week4"] > auc["oracle_p12_first_visit"] > 0.7, auc


def test_sheehan_rule_from_measured_areas(cohort, oracle):
    v = cohort.visits.set_index(["wound_id", "week"])["area_cm2"]
    o = oracle.set_index("wound_id")
    week4 = v.xs(4, level="week")
    expected = 100 * (1 - week4 / v.xs(0, level="week").reindex(week4.index))
    np.testing.assert_allclose(o.loc[week4.index, "par4"], expected, rtol=1e-12)
    closed_early = cohort.visits.query("closed and week < 4")["wound_id"]
    assert (o.loc[closed_early, "par4"] == 100).all() and (o.loc[closed_early, "oracle_p12_week4"] == 1).all()
    assert set(o["sheehan_p12"].dropna()) == {0.09, 0.58}


def _brute_force_probability(row: pd.Series, visits: pd.DataFrame, landmark: int, model) -> float:
    """P(T <= 12 | data) on dense (a, v) and b grids with the full multivariate-normal likelihood."""
    frame = row.to_frame().T.infer_objects()
    mu_a, sd_a = (x[0] for x in area_prior(frame["etiology"], model))
    mu_b, sd_b = (x[0] for x in depth_prior(frame["etiology"], model))
    eta = log_rate_mean(frame, model)[0]
    seen = visits[(visits["week"] <= landmark) & ~visits["closed"]]
    t, y, z = seen["week"].to_numpy(float), np.log(seen["area_cm2"].to_numpy()), np.log(seen["depth_mm"].to_numpy())
    a = np.linspace(y[0] - 2.5, y[0] + 2.5, 1000)[:, None]
    v = eta + model.area_slope * (mu_a - log(AREA_REFERENCE_CM2)) + np.linspace(-4.5, 4.5, 1200)[None, :]
    k = np.exp(v)
    log_prior = -0.5 * ((a - mu_a) / sd_a) ** 2 - 0.5 * (
        (v - eta - model.area_slope * (a - log(AREA_REFERENCE_CM2))) / model.rate_sd) ** 2
    residual = y - (a[..., None] - k[..., None] * t)  # (A, V, J)
    area_loglik = -0.5 * np.einsum("avj,jk,avk->av", residual, np.linalg.inv(model.area_covariance(t)), residual)
    b = np.linspace(z[0] - 2.5, z[0] + 2.5, 400)[:, None, None]
    depth_residual = z - (b - model.depth_exponent * k[0][None, :, None] * t)  # (B, V, J)
    depth_lik = np.exp(-0.5 * ((b[:, :, 0] - mu_b) / sd_b) ** 2 - 0.5 * np.einsum(
        "bvj,jk,bvk->bv", depth_residual, np.linalg.inv(model.depth_covariance(t)), depth_residual)).sum(axis=0)
    log_post = log_prior + area_loglik
    post = np.exp(log_post - log_post.max()) * depth_lik * (a > log(CLOSURE_CM2) + k * t.max())
    return float((post * (a <= log(CLOSURE_CM2) + k * HORIZON_WEEKS)).sum() / post.sum())


@pytest.mark.parametrize("landmark, column", [(0, "oracle_p12_first_visit"), (4, "oracle_p12_week4")])
def test_oracle_matches_brute_force_integration(cohort, oracle, landmark, column):
    covariates = wound_covariates(cohort)
    open_at_4 = ~cohort.wounds["wound_id"].isin(cohort.visits.query("closed and week <= 4")["wound_id"])
    candidates = oracle.index[open_at_4 & oracle[column].between(0.1, 0.9)]
    for i in candidates[:: max(len(candidates) // 4, 1)][:4]:
        wound_visits = cohort.visits[cohort.visits["wound_id"] == oracle.at[i, "wound_id"]].sort_values("week")
        expected = _brute_force_probability(covariates.iloc[i], wound_visits, landmark, cohort.model)
        assert oracle.at[i, column] == pytest.approx(expected, abs=2e-3)


def test_feature_tables_are_point_in_time_ready(cohort):
    tables = feature_tables(cohort)
    history = tables["wound_history"]
    assert all(str(t["event_timestamp"].dt.tz) == "UTC" for t in tables.values())
    lengths = history["area_history"].map(len)
    assert (lengths == history["visit_index"] + 1).all()
    assert np.allclose(history["area_history"].map(lambda h: h[-1]), history["area_cm2"])
    first = history[history["visit_index"] == 0]
    assert np.allclose(first["pct_area_reduction"], 0) and np.allclose(
        history.loc[history["closed"], "pct_area_reduction"], 100)
    rows = tables["entity_rows"]
    assert len(rows) == 2 * len(cohort.wounds) and set(rows["prediction_week"]) == {0, 4}
    assert (rows["event_timestamp"].dt.strftime("%H:%M:%S") == "23:59:59").all()
    assert rows["healed_12w"].isna().sum() == 2 * cohort.outcomes["healed_12w"].isna().sum()
