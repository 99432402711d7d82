"""The oracle: the exact P(healed within 12 weeks) under the known model, and Sheehan's 4-week rule.

Given the log healing rate v, the model is linear-Gaussian in the true log area a and log depth b, so a and b
integrate out in closed form (normal CDFs); only v is integrated numerically, on a 1-D grid. docs/cohort.md
derives every line.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import log

import numpy as np
import pandas as pd
from scipy import special

from features.cohort.model import (
    AREA_REFERENCE_CM2,
    CLOSURE_CM2,
    HORIZON_WEEKS,
    LANDMARK_WEEKS,
    HealingModel,
    area_prior,
    depth_prior,
    log_rate_mean,
)
from features.cohort.simulate import Cohort

SHEEHAN_CUT_PERCENT = 50.0  # percent area reduction at week 4
# Sheehan et al. 2003 (Diabetes Care 26:1879): 12-week healing 58% above the 4-week midpoint, 9% below
SHEEHAN_HEALING = (0.09, 0.58)
COARSE_POINTS, FINE_POINTS, FINE_HALF_WIDTH = 321, 161, 9.0
CHUNK = 512  # wounds per block: keeps the (wounds, grid) arrays small


@dataclass(frozen=True)
class VisitSummary:
    """What the oracle needs from a wound's visits up to the landmark, each entry an array over wounds.

    area and depth hold the generalised-least-squares sums 1'P1, 1'Py, 1'Pt, y'Py, t'Py, t'Pt of the open
    visits, P being the inverse covariance of the deviations from the trend (y: log area or log depth).
    """

    area: dict[str, np.ndarray]
    depth: dict[str, np.ndarray]
    t_last: np.ndarray  # week of the last open visit: the wound was still open then
    healed: np.ndarray  # closure already seen at a visit up to the landmark


def _padded(frame: pd.DataFrame, wound_ids: pd.Series, columns: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(W, J, C) values of each wound's rows in order, zero-padded, and the (W, J) mask of real rows."""
    row = pd.Index(wound_ids).get_indexer(frame["wound_id"])
    slot = frame.groupby("wound_id").cumcount().to_numpy()
    values = np.zeros((len(wound_ids), slot.max() + 1, len(columns)))
    mask = np.zeros(values.shape[:2], dtype=bool)
    values[row, slot], mask[row, slot] = frame[columns].to_numpy(float), True
    return values, mask


def _gls_sums(weeks: np.ndarray, values: np.ndarray, mask: np.ndarray, covariance: np.ndarray) -> dict:
    """Sums 1'P1, 1'Py, 1'Pt, y'Py, t'Py, t'Pt over each wound's real rows (P: inverse covariance)."""
    eye = np.eye(mask.shape[1], dtype=bool)
    real = mask[:, :, None] & mask[:, None, :]
    covariance = np.where(real, covariance, eye)  # padding: an identity block, decoupled and weightless
    basis = np.stack([mask, values, weeks], axis=-1) * mask[..., None]  # (W, J, 3)
    gram = np.einsum("wji,wjk->wik", basis, np.linalg.solve(covariance, basis))  # (W, 3, 3)
    return {"11": gram[:, 0, 0], "1y": gram[:, 0, 1], "1t": gram[:, 0, 2], "yy": gram[:, 1, 1],
            "ty": gram[:, 1, 2], "tt": gram[:, 2, 2]}


def summarise_visits(visits: pd.DataFrame, wound_ids: pd.Series, landmark: float,
                     model: HealingModel) -> VisitSummary:
    """Reduce each wound's visits with week <= landmark to the oracle's sufficient statistics."""
    seen = visits[visits["week"] <= landmark].sort_values(["wound_id", "week"])
    healed = seen.groupby("wound_id")["closed"].any().reindex(wound_ids, fill_value=False).to_numpy()
    open_ = seen[~seen["closed"]].assign(log_area=lambda f: np.log(f["area_cm2"]),
                                         log_depth=lambda f: np.log(f["depth_mm"]))
    values, mask = _padded(open_, wound_ids, ["week", "log_area", "log_depth"])
    if not mask[:, 0].all():
        raise ValueError("every wound needs its open first visit in `visits`")
    weeks = values[..., 0]
    return VisitSummary(
        area=_gls_sums(weeks, values[..., 1], mask, model.area_covariance(weeks)),
        depth=_gls_sums(weeks, values[..., 2], mask, model.depth_covariance(weeks)),
        t_last=np.where(mask, weeks, -np.inf).max(axis=1), healed=healed)


def _trend_terms(slope: np.ndarray, prior_mean, prior_var, sums: dict):
    """For y = c - slope t + e, e ~ N(0, C), c ~ N(prior_mean, prior_var): the evidence's quadratic form and
    the posterior mean and precision of c (the log determinant does not depend on the slope)."""
    weighted = sums["1y"] + slope * sums["1t"] - prior_mean * sums["11"]  # 1'P e, e = y + slope t - m
    quad = (sums["yy"] + 2 * slope * sums["ty"] + slope**2 * sums["tt"]
            - 2 * prior_mean * (sums["1y"] + slope * sums["1t"]) + prior_mean**2 * sums["11"]
            - weighted**2 / (1.0 / prior_var + sums["11"]))
    precision = 1.0 / prior_var + sums["11"]
    return quad, (prior_mean / prior_var + sums["1y"] + slope * sums["1t"]) / precision, precision


def _log_weights(v: np.ndarray, p: dict, s: dict, model: HealingModel, horizon: float):
    """Log posterior weight of each grid value v (W, G), and P(closure by horizon | v, data) on the grid."""
    k = np.exp(v)
    m0 = p["mu_a"] + p["rho"] * (v - p["mu_v"])  # prior of a given v
    quad_a, post_mean, precision = _trend_terms(k, m0, p["s0"], s["area"])
    quad_b, _, _ = _trend_terms(model.depth_exponent * k, p["mu_b"], p["s_b2"], s["depth"])
    post_sd = precision**-0.5
    # open at the last visit: a > lower; closed by the horizon: a <= upper
    lower, upper = log(CLOSURE_CM2) + k * s["t_last"], log(CLOSURE_CM2) + k * horizon
    log_open = special.log_ndtr((post_mean - lower) / post_sd)
    log_weight = -0.5 * (v - p["mu_v"]) ** 2 / p["var_v"] - 0.5 * quad_a - 0.5 * quad_b + log_open
    closed_by_horizon = -np.expm1(special.log_ndtr((post_mean - upper) / post_sd) - log_open)
    return log_weight, closed_by_horizon


def _grid_average(v: np.ndarray, p: dict, s: dict, model: HealingModel, horizon: float):
    """Posterior mean of P(closure by horizon | v) over a uniform grid, and the posterior mean and sd of v."""
    log_weight, closed = _log_weights(v, p, s, model, horizon)
    weight = np.exp(log_weight - log_weight.max(axis=1, keepdims=True))
    weight /= weight.sum(axis=1, keepdims=True)
    mean = (weight * v).sum(axis=1, keepdims=True)
    sd = np.sqrt((weight * (v - mean) ** 2).sum(axis=1, keepdims=True))
    return (weight * closed).sum(axis=1), mean, sd


def healing_probability(covariates: pd.DataFrame, summary: VisitSummary, model: HealingModel | None = None,
                        horizon: float = HORIZON_WEEKS) -> np.ndarray:
    """P(true closure time <= horizon | risk factors, visits summarised), one per row of covariates."""
    model = model or HealingModel()
    mu_a, sd_a = area_prior(covariates["etiology"], model)
    mu_b, sd_b = depth_prior(covariates["etiology"], model)
    beta = model.area_slope
    mu_v = log_rate_mean(covariates, model) + beta * (mu_a - log(AREA_REFERENCE_CM2))
    var_v = model.rate_sd**2 + beta**2 * sd_a**2  # (a, v) are jointly normal a priori
    prior = {"mu_a": mu_a, "mu_v": mu_v, "var_v": var_v, "rho": beta * sd_a**2 / var_v,
             "s0": sd_a**2 * model.rate_sd**2 / var_v, "mu_b": mu_b, "s_b2": sd_b**2}
    stats = {"area": summary.area, "depth": summary.depth, "t_last": summary.t_last}
    out = np.empty(len(covariates))
    coarse = np.linspace(-FINE_HALF_WIDTH, FINE_HALF_WIDTH, COARSE_POINTS)
    fine = np.linspace(-FINE_HALF_WIDTH, FINE_HALF_WIDTH, FINE_POINTS)
    for start in range(0, len(out), CHUNK):
        block = slice(start, start + CHUNK)
        p = {key: val[block, None] for key, val in prior.items()}
        s = {key: {k: v[block, None] for k, v in val.items()} if isinstance(val, dict) else val[block, None]
             for key, val in stats.items()}
        # coarse pass over the prior's range finds the posterior; the fine pass integrates over it
        _, mean, sd = _grid_average(p["mu_v"] + np.sqrt(p["var_v"]) * coarse, p, s, model, horizon)
        sd = np.maximum(sd, np.sqrt(p["var_v"]) * (coarse[1] - coarse[0]))  # at least one coarse step
        out[block], _, _ = _grid_average(mean + sd * fine, p, s, model, horizon)
    # a weighted average of probabilities can round a hair past 1 (1 + 2e-16 was seen): keep it a probability
    return np.where(summary.healed, 1.0, np.clip(out, 0.0, 1.0))


def wound_covariates(cohort: Cohort) -> pd.DataFrame:
    """Each wound's row joined with its patient's risk factors (row order of cohort.wounds)."""
    return cohort.wounds.merge(cohort.patients, on="patient_id", how="left", suffixes=("", "_patient"))


def percent_area_reduction(visits: pd.DataFrame, wound_ids: pd.Series, week: float) -> np.ndarray:
    """100 (1 - A(week) / A(0)) from measured areas; 100 once closed; NaN without a visit by then."""
    baseline = visits[visits["week"] == 0].set_index("wound_id")["area_cm2"].reindex(wound_ids)
    seen = visits[visits["week"] <= week].sort_values("week").groupby("wound_id").last().reindex(wound_ids)
    reached = (seen["week"] == week) | seen["closed"].fillna(False).astype(bool)
    return np.where(reached, 100.0 * (1.0 - seen["area_cm2"] / baseline), np.nan)


def oracle_table(cohort: Cohort) -> pd.DataFrame:
    """Per wound: the oracle at the first visit and at week 4, the week-4 area reduction and Sheehan's rule."""
    covariates, ids = wound_covariates(cohort), cohort.wounds["wound_id"]
    par4 = percent_area_reduction(cohort.visits, ids, LANDMARK_WEEKS)
    above = par4 >= SHEEHAN_CUT_PERCENT
    return pd.DataFrame({
        "wound_id": ids,
        "oracle_p12_first_visit": healing_probability(covariates, summarise_visits(cohort.visits, ids, 0, cohort.model),
                                                      cohort.model),
        "oracle_p12_week4": healing_probability(covariates, summarise_visits(cohort.visits, ids, LANDMARK_WEEKS,
                                                                                  cohort.model), cohort.model),
        "par4": par4,
        "sheehan_healed": np.where(np.isnan(par4), np.nan, above.astype(float)),
        "sheehan_p12": np.where(np.isnan(par4), np.nan, np.where(above, *SHEEHAN_HEALING[::-1])),
    })
