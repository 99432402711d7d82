"""Draw a cohort from the generative model: patients, wounds, visits, observed outcomes and the latent truth."""

from __future__ import annotations

from dataclasses import dataclass
from math import log
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import special

from features.cohort.model import (
    AREA_REFERENCE_CM2,
    CLOSURE_CM2,
    ETIOLOGIES,
    HORIZON_WEEKS,
    CohortConfig,
    HealingModel,
    area_prior,
    depth_prior,
    log_rate_mean,
)

TABLES = ("patients", "wounds", "visits", "outcomes", "truth")


@dataclass
class Cohort:
    """The observed tables (patients, wounds, visits, outcomes) and the latent truth models must not see."""

    patients: pd.DataFrame
    wounds: pd.DataFrame
    visits: pd.DataFrame
    outcomes: pd.DataFrame
    truth: pd.DataFrame
    config: CohortConfig
    model: HealingModel


def simulate_cohort(config: CohortConfig | None = None, model: HealingModel | None = None) -> Cohort:
    """A cohort drawn deterministically from (config.seed, config, model)."""
    config, model = config or CohortConfig(), model or HealingModel()
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(config.seed).spawn(3)]
    patients = draw_patients(streams[0], config)
    wounds, truth = draw_wounds(streams[1], patients, config, model)
    visits, outcomes, truth = draw_visits(streams[2], patients, wounds, truth, config, model)
    # the dropout time is latent: it stays in truth, never in the observed patient table
    return Cohort(patients.drop(columns="dropout_weeks"), wounds, visits, outcomes, truth, config, model)


def draw_patients(rng: np.random.Generator, config: CohortConfig) -> pd.DataFrame:
    """Risk factors, visit schedule and enrolment day of each patient (HbA1c is NaN for non-diabetics)."""
    n = config.n_patients
    age = np.clip(rng.normal(66.0, 12.0, n), 30.0, 95.0).round(0)
    diabetes = rng.random(n) < 0.5
    smoker = rng.random(n) < 0.18
    hba1c = np.where(diabetes, np.clip(rng.normal(7.9, 1.4, n), 5.5, 13.5), np.nan).round(1)
    bmi = np.clip(np.exp(rng.normal(np.log(np.where(diabetes, 31.0, 27.0)), 0.17)), 16.0, 60.0).round(1)
    # peripheral arterial disease is commoner with diabetes, smoking and age; it sets the ABI's mode
    pad = rng.random(n) < special.expit(-1.6 + 0.9 * diabetes + 0.8 * smoker + 0.04 * (age - 65.0))
    abi = np.where(pad, np.clip(rng.normal(0.70, 0.12, n), 0.30, 0.89), np.clip(rng.normal(1.08, 0.09, n), 0.9, 1.35))
    # enrolment: a day in the recruitment window and a clinic time of day, to the minute
    enrolment_min = rng.integers(0, config.recruitment_weeks * 7 + 1, n) * 1440 + rng.integers(8 * 60, 16 * 60, n)
    return pd.DataFrame({
        "patient_id": [f"P{i:06d}" for i in range(n)],
        "sex": np.where(rng.random(n) < 0.45, "F", "M"),
        "age": age, "diabetes": diabetes, "hba1c": hba1c, "abi": abi.round(2), "smoker": smoker, "bmi": bmi,
        "visit_interval_weeks": np.where(rng.random(n) < config.weekly_fraction, 1, 2),
        "first_visit_date": pd.Timestamp(config.start_date, tz="UTC") + pd.to_timedelta(enrolment_min, unit="min"),
        "dropout_weeks": rng.exponential(1.0 / config.dropout_per_week, n) if config.dropout_per_week > 0
        else np.full(n, np.inf),
    })


def _etiology_probabilities(patients: pd.DataFrame) -> np.ndarray:
    """(P, 3) probabilities of ETIOLOGIES: diabetics mostly foot ulcers; pressure injuries grow with age."""
    pressure = np.clip(0.25 + 0.02 * (patients["age"].to_numpy() - 65.0), 0.1, 0.7)
    non_diabetic = np.column_stack([np.zeros(len(patients)), 1.0 - pressure, pressure])
    diabetic = np.broadcast_to([0.75, 0.15, 0.10], non_diabetic.shape)
    return np.where(patients["diabetes"].to_numpy()[:, None], diabetic, non_diabetic)


def _categorical(rng: np.random.Generator, probabilities: np.ndarray) -> np.ndarray:
    """One index per row of (N, K) probabilities (inverse-CDF sampling, vectorised)."""
    cumulative = np.cumsum(probabilities, axis=1)
    return (rng.random((len(probabilities), 1)) * cumulative[:, -1:] > cumulative).sum(axis=1)


def draw_wounds(rng: np.random.Generator, patients: pd.DataFrame, config: CohortConfig,
                model: HealingModel) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Observed wound attributes at the first visit, and the latent truth (true log area, depth, rate)."""
    owner = np.repeat(np.arange(len(patients)), 1 + (rng.random(len(patients)) < config.second_wound_fraction))
    n = len(owner)
    etiology = np.asarray(ETIOLOGIES)[_categorical(rng, _etiology_probabilities(patients)[owner])]
    priors = [model.priors[e] for e in etiology]
    site = np.empty(n, dtype=object)
    for name in ETIOLOGIES:
        rows = np.flatnonzero(etiology == name)
        sites = model.priors[name].sites
        site[rows] = np.asarray(list(sites))[_categorical(rng, np.tile(list(sites.values()), (len(rows), 1)))]
    duration = np.clip(np.exp(rng.normal(np.log([p.duration_median_weeks for p in priors]), 0.8)), 1.0, 260.0)
    wounds = pd.DataFrame({
        "wound_id": [f"W{i:06d}" for i in range(n)], "patient_id": patients["patient_id"].to_numpy()[owner],
        "etiology": etiology, "body_site": site.astype(str),
        "infection": rng.random(n) < np.array([p.infection for p in priors]),
        "duration_weeks": duration.round(1),
        "first_visit_date": patients["first_visit_date"].iloc[owner].to_numpy(),
    })
    wounds["onset_date"] = wounds["first_visit_date"] - pd.to_timedelta((wounds["duration_weeks"] * 7).round(), "D")
    return wounds, _draw_truth(rng, patients.iloc[owner].reset_index(drop=True), wounds, model)


def _draw_truth(rng: np.random.Generator, owners: pd.DataFrame, wounds: pd.DataFrame,
                model: HealingModel) -> pd.DataFrame:
    """True log baseline area a (truncated above the closure threshold), log depth b and log rate v."""
    covariates = pd.concat([wounds, owners[["diabetes", "hba1c", "abi", "smoker", "age", "bmi"]]], axis=1)
    area_mean, area_sd = area_prior(wounds["etiology"], model)
    low = special.ndtr((log(CLOSURE_CM2) - area_mean) / area_sd)
    log_area0 = area_mean + area_sd * special.ndtri(low + (1.0 - low) * rng.random(len(wounds)))
    depth_mean, depth_sd = depth_prior(wounds["etiology"], model)
    log_rate = (log_rate_mean(covariates, model) + model.area_slope * (log_area0 - log(AREA_REFERENCE_CM2))
                + model.rate_sd * rng.standard_normal(len(wounds)))
    return pd.DataFrame({
        "wound_id": wounds["wound_id"], "log_area0": log_area0,
        "log_depth0": depth_mean + depth_sd * rng.standard_normal(len(wounds)), "log_rate": log_rate,
        "shape_factor": rng.uniform(0.35, 0.65, len(wounds)),  # volume = factor * area * depth
        "weeks_to_closure": (log_area0 - log(CLOSURE_CM2)) / np.exp(log_rate),
        "dropout_weeks": owners["dropout_weeks"].to_numpy(),
    })


def draw_visits(rng: np.random.Generator, patients: pd.DataFrame, wounds: pd.DataFrame, truth: pd.DataFrame,
                config: CohortConfig, model: HealingModel) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Every attended visit with its noisy measurements, the observed outcomes, and truth with its label."""
    n_slots = config.follow_up_weeks + 1
    owner = pd.Index(patients["patient_id"]).get_indexer(wounds["patient_id"])
    interval = patients["visit_interval_weeks"].to_numpy()[owner]
    week = interval[:, None] * np.arange(n_slots)  # (W, S) scheduled weeks
    closure = truth["weeks_to_closure"].to_numpy()[:, None]
    closure_slot = np.ceil(closure / interval[:, None]).astype(int)  # first scheduled visit at or after T
    attended = ((week <= config.follow_up_weeks) & (week < truth["dropout_weeks"].to_numpy()[:, None])
                & (np.arange(n_slots) <= closure_slot))
    area, depth = _measurements(rng, truth, week, config.follow_up_weeks, model)
    # later visits come within a few hours of the first visit's time of day; a patient's wounds share visits
    shift = np.column_stack([np.zeros(len(patients)), rng.uniform(-3.0, 3.0, (len(patients), n_slots - 1))])
    rows, slots = np.nonzero(attended)
    first = wounds["first_visit_date"].dt.tz_convert(None).to_numpy()[rows]
    minutes = week[rows, slots] * 7 * 24 * 60 + np.round(shift[owner][rows, slots] * 60)
    open_now = (week < closure)[rows, slots]
    visits = pd.DataFrame({
        "wound_id": wounds["wound_id"].to_numpy()[rows], "patient_id": wounds["patient_id"].to_numpy()[rows],
        "visit_date": pd.to_datetime(first + minutes.astype("timedelta64[m]"), utc=True),
        "week": week[rows, slots], "visit_index": slots,
        "area_cm2": np.where(open_now, area[rows, slots], 0.0).round(3),
        "depth_mm": np.where(open_now, depth[rows, slots], 0.0).round(2),
        "closed": ~open_now,
    })
    visits.insert(6, "volume_cm3", (truth["shape_factor"].to_numpy()[rows] * visits["area_cm2"]
                                    * visits["depth_mm"] / 10.0).round(4))
    truth = truth.assign(healed_12w=(truth["weeks_to_closure"] <= HORIZON_WEEKS).astype(int))
    return visits, observed_outcomes(visits, config), truth


def _measurements(rng: np.random.Generator, truth: pd.DataFrame, week: np.ndarray, follow_up: int,
                  model: HealingModel) -> tuple[np.ndarray, np.ndarray]:
    """(W, S) measured area (cm2) and depth (mm) at the scheduled weeks, were the wound still open."""
    k = np.exp(truth["log_rate"].to_numpy())[:, None]
    fluctuation = _fluctuation(rng, len(truth), follow_up + 1, model)
    area = np.exp(truth["log_area0"].to_numpy()[:, None] - k * week
                  + np.take_along_axis(fluctuation, np.minimum(week, follow_up), axis=1)
                  + model.area_noise * rng.standard_normal(week.shape))
    depth = np.exp(truth["log_depth0"].to_numpy()[:, None] - model.depth_exponent * k * week
                   + model.depth_noise * rng.standard_normal(week.shape))
    return area, depth


def _fluctuation(rng: np.random.Generator, n_wounds: int, n_weeks: int, model: HealingModel) -> np.ndarray:
    """(W, n_weeks) stationary Ornstein-Uhlenbeck path of the log area about its trend, at whole weeks."""
    rho = np.exp(-1.0 / model.fluctuation_weeks)
    steps = model.fluctuation_sd * rng.standard_normal((n_wounds, n_weeks))
    path = np.empty_like(steps)
    path[:, 0] = steps[:, 0]
    for week in range(1, n_weeks):  # AR(1) recursion over at most a few dozen weeks
        path[:, week] = rho * path[:, week - 1] + np.sqrt(1.0 - rho**2) * steps[:, week]
    return path


def observed_outcomes(visits: pd.DataFrame, config: CohortConfig) -> pd.DataFrame:
    """Per wound: healed, weeks_to_closure (closure visit, or last visit when censored), the 12-week label.

    healed_12w is NaN when the wound was lost to follow-up unhealed before week 12: its label is unknown and
    such wounds are left out of the 12-week target (docs/cohort.md: the small selection bias this brings).
    """
    last = visits.groupby("wound_id", sort=False).agg(last_visit_week=("week", "max"), healed=("closed", "any"))
    last = last.reset_index()
    censored = ~last["healed"]
    label = np.where(last["healed"], last["last_visit_week"] <= HORIZON_WEEKS, 0.0)
    return last.assign(
        weeks_to_closure=last["last_visit_week"].astype(float), censored=censored,
        lost_to_follow_up=censored & (last["last_visit_week"] < config.follow_up_weeks),
        healed_12w=np.where(censored & (last["last_visit_week"] < HORIZON_WEEKS), np.nan, label.astype(float)),
    )[["wound_id", "healed", "weeks_to_closure", "censored", "lost_to_follow_up", "last_visit_week", "healed_12w"]]


def write_cohort(cohort: Cohort, out_dir: str | Path) -> dict[str, Path]:
    """Write the cohort's tables as parquet under out_dir; returns {table: path}."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in TABLES:
        paths[name] = out_dir / f"{name}.parquet"
        getattr(cohort, name).to_parquet(paths[name], index=False)
    return paths
