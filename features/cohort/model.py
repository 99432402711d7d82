"""The cohort's generative model: simulation settings, effect sizes and the latent healing rate.

docs/cohort.md states every equation and where each effect size comes from. In short, wound i has a latent
log healing rate v = eta(x) + beta_area (a - log 2) + u, u ~ N(0, sigma_u^2), its true area follows
A(t) = exp(a - e^v t) and it closes when A falls below CLOSURE_CM2.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from math import log

import numpy as np
import pandas as pd

HORIZON_WEEKS = 12  # the prognosis target: healed within 12 weeks of the first visit
LANDMARK_WEEKS = 4  # Sheehan's rule and the second oracle look at the visits up to week 4
CLOSURE_CM2 = 0.1  # true area below which a wound counts as closed (complete epithelialisation)
AREA_REFERENCE_CM2 = 2.0  # centre of the area effect
DURATION_REFERENCE_WEEKS = 8.0  # centre of the wound-age effect
ETIOLOGIES = ("diabetic_foot_ulcer", "venous_leg_ulcer", "pressure_injury")


@dataclass(frozen=True)
class EtiologyPrior:
    """Per-etiology distributions of the wound at its first visit and its baseline healing rate."""

    log_rate: float  # log k (per week) of the reference wound of this etiology
    area_median_cm2: float  # true baseline area: lognormal, truncated above CLOSURE_CM2
    area_log_sd: float
    depth_median_mm: float  # true baseline depth: lognormal
    depth_log_sd: float
    duration_median_weeks: float  # onset to first visit: lognormal
    infection: float  # probability of a clinically infected wound at the first visit
    sites: dict[str, float]  # body site -> probability


ETIOLOGY_PRIORS = {
    "diabetic_foot_ulcer": EtiologyPrior(
        log_rate=log(0.24), area_median_cm2=1.5, area_log_sd=0.9, depth_median_mm=3.0, depth_log_sd=0.5,
        duration_median_weeks=6.0, infection=0.30,
        sites={"plantar_forefoot": 0.35, "hallux": 0.2, "lesser_toe": 0.15, "heel": 0.15, "midfoot": 0.05,
               "dorsal_foot": 0.1}),
    "venous_leg_ulcer": EtiologyPrior(
        log_rate=log(0.46), area_median_cm2=5.0, area_log_sd=1.0, depth_median_mm=1.5, depth_log_sd=0.5,
        duration_median_weeks=12.0, infection=0.12,
        sites={"medial_malleolus": 0.5, "lateral_malleolus": 0.15, "lower_leg": 0.35}),
    "pressure_injury": EtiologyPrior(
        log_rate=log(0.28), area_median_cm2=3.0, area_log_sd=0.9, depth_median_mm=4.0, depth_log_sd=0.6,
        duration_median_weeks=4.0, infection=0.20,
        sites={"sacrum": 0.5, "heel": 0.3, "ischium": 0.1, "trochanter": 0.1}),
}


@dataclass(frozen=True)
class HealingModel:
    """Effect sizes (log rate ratios on the healing rate k) and noise levels; docs/cohort.md cites them."""

    diabetes: float = log(0.90)
    hba1c_per_point_above_7: float = log(0.92)  # diabetics only
    pad: float = log(0.70)  # ankle-brachial index below 0.9
    abi_per_tenth_below_0_9: float = log(0.90)
    smoker: float = log(0.80)
    infection: float = log(0.65)
    area_per_doubling: float = log(0.85)
    duration_per_doubling: float = log(0.88)
    age_per_decade_above_65: float = log(0.95)
    bmi_per_5_above_30: float = log(0.95)
    heel: float = log(0.85)
    rate_sd: float = 0.70  # sigma_u: wound-to-wound variation of log k not explained by risk factors
    area_noise: float = 0.12  # sigma_m: log-scale measurement noise of the area (about 12% CV)
    # slow fluctuation of the log area about its trend (oedema, debridement, stalls): Ornstein-Uhlenbeck
    fluctuation_sd: float = 0.30  # sigma_p
    fluctuation_weeks: float = 6.0  # tau: correlation time
    depth_noise: float = 0.20  # log-scale measurement noise of the depth
    depth_exponent: float = 0.5  # depth shrinks like a length: d(t) = d0 (A(t) / A0)^gamma
    priors: dict[str, EtiologyPrior] = field(default_factory=lambda: dict(ETIOLOGY_PRIORS))

    @property
    def area_slope(self) -> float:
        """beta_area: change of log k per unit of true log area."""
        return self.area_per_doubling / log(2.0)

    def area_covariance(self, weeks: np.ndarray) -> np.ndarray:
        """(..., J, J) covariance of the log-area deviations from the trend at visit weeks (..., J)."""
        lag = np.abs(weeks[..., :, None] - weeks[..., None, :])
        return self.fluctuation_sd**2 * np.exp(-lag / self.fluctuation_weeks) + self.area_noise**2 * (lag == 0)

    def depth_covariance(self, weeks: np.ndarray) -> np.ndarray:
        """(..., J, J) covariance of the log-depth deviations: independent measurement noise."""
        return self.depth_noise**2 * np.broadcast_to(np.eye(weeks.shape[-1]), (*weeks.shape, weeks.shape[-1]))


@dataclass(frozen=True)
class CohortConfig:
    """Simulation settings, mirroring the `cohort` section of params.yaml."""

    seed: int = 2026
    n_patients: int = 2000
    start_date: str = "2024-01-01"  # first visits spread uniformly over the recruitment window after it
    recruitment_weeks: int = 78
    follow_up_weeks: int = 24  # administrative end of follow-up
    weekly_fraction: float = 0.6  # patients seen weekly; the others fortnightly
    dropout_per_week: float = 0.01  # exponential loss to follow-up
    second_wound_fraction: float = 0.15

    def __post_init__(self) -> None:
        if self.n_patients < 1:
            raise ValueError(f"cohort.n_patients must be at least 1, got {self.n_patients}")
        if self.follow_up_weeks < HORIZON_WEEKS or self.follow_up_weeks % 2:
            raise ValueError(f"cohort.follow_up_weeks must be even and >= {HORIZON_WEEKS}, "
                             f"got {self.follow_up_weeks}")
        if self.recruitment_weeks < 0:
            raise ValueError(f"cohort.recruitment_weeks must be >= 0, got {self.recruitment_weeks}")
        for name in ("weekly_fraction", "second_wound_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"cohort.{name} must lie in [0, 1], got {getattr(self, name)}")
        if self.dropout_per_week < 0:
            raise ValueError(f"cohort.dropout_per_week must be >= 0, got {self.dropout_per_week}")
        date.fromisoformat(self.start_date)  # ValueError on a malformed date

    @classmethod
    def from_params(cls, section: dict) -> CohortConfig:
        """Build from the params.yaml `cohort` section (profile overrides already applied)."""
        known = {f: section[f] for f in cls.__dataclass_fields__ if f in section}
        if "start_date" in known:
            known["start_date"] = str(known["start_date"])  # YAML may parse it as a date
        return cls(**known)


def log_rate_mean(covariates: pd.DataFrame, model: HealingModel) -> np.ndarray:
    """eta: the mean of log k given the exactly known risk factors (all but the area term and u).

    covariates needs etiology, body_site, infection, duration_weeks, diabetes, hba1c, abi, smoker, age, bmi.
    """
    c = covariates
    base = c["etiology"].map({name: prior.log_rate for name, prior in model.priors.items()}).to_numpy(float)
    hba1c_excess = np.where(c["diabetes"], np.nan_to_num(c["hba1c"].to_numpy(float) - 7.0), 0.0)
    abi = c["abi"].to_numpy(float)
    return (base
            + model.diabetes * c["diabetes"].to_numpy(float)
            + model.hba1c_per_point_above_7 * hba1c_excess
            + model.pad * (abi < 0.9)
            + model.abi_per_tenth_below_0_9 * np.maximum(0.9 - abi, 0.0) / 0.1
            + model.smoker * c["smoker"].to_numpy(float)
            + model.infection * c["infection"].to_numpy(float)
            + model.duration_per_doubling * np.log2(c["duration_weeks"].to_numpy(float) / DURATION_REFERENCE_WEEKS)
            + model.age_per_decade_above_65 * (c["age"].to_numpy(float) - 65.0) / 10.0
            + model.bmi_per_5_above_30 * np.maximum(c["bmi"].to_numpy(float) - 30.0, 0.0) / 5.0
            + model.heel * (c["body_site"] == "heel").to_numpy(float))


def area_prior(etiology: pd.Series, model: HealingModel) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of the true log baseline area a (before truncation at CLOSURE_CM2)."""
    mean = etiology.map({n: log(p.area_median_cm2) for n, p in model.priors.items()}).to_numpy(float)
    sd = etiology.map({n: p.area_log_sd for n, p in model.priors.items()}).to_numpy(float)
    return mean, sd


def depth_prior(etiology: pd.Series, model: HealingModel) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of the true log baseline depth b (mm)."""
    mean = etiology.map({n: log(p.depth_median_mm) for n, p in model.priors.items()}).to_numpy(float)
    sd = etiology.map({n: p.depth_log_sd for n, p in model.priors.items()}).to_numpy(float)
    return mean, sd
