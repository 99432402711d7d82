"""Suites of the cohort tables (docs/cohort.md) and of the Feast feature tables built from them.

Ranges are clinical plausibility, wider than the generator's own clipping, so that they also hold for
real cohorts; categories are the cohort model's vocabulary.
"""

from __future__ import annotations

import great_expectations.expectations as gxe
from great_expectations.expectations import Expectation

from features.cohort.model import ETIOLOGIES, ETIOLOGY_PRIORS
from features.cohort.tables import PREDICTION_WEEKS
from features.quality.suites import (
    QualityLimits,
    at_least,
    between,
    equal,
    in_set,
    known_id,
    non_empty,
    not_null,
    unique,
    where,
)

BODY_SITES = sorted({site for prior in ETIOLOGY_PRIORS.values() for site in prior.sites})
SITE_PAIRS = [(etiology, site) for etiology, prior in ETIOLOGY_PRIORS.items() for site in prior.sites]
FLAGS = [True, False]


def flag(column: str, why: str = "") -> list[Expectation]:
    """A boolean column: only True or False, never null."""
    return [in_set(column, FLAGS, why), not_null(column, why)]


def patient_expectations(time_column: str) -> list[Expectation]:
    """Risk factors of one patient per row (the cohort's patients and Feast's patient_risk_factors)."""
    return [
        non_empty(), not_null("patient_id"), unique("patient_id", why="one row per patient"),
        not_null(time_column, "every patient has a first visit"),
        in_set("sex", ["F", "M"]), not_null("sex"),
        between("age", 18, 110, "adult age in years"), not_null("age"),
        *flag("diabetes"), *flag("smoker"),
        between("hba1c", 4.0, 20.0, "HbA1c in percent"),
        not_null("hba1c", "every diabetic has an HbA1c", **where("diabetes", True)),
        gxe.ExpectColumnValuesToBeNull(column="hba1c", description="only diabetics have an HbA1c",
                                       **where("diabetes", False)),
        between("abi", 0.1, 2.0, "ankle-brachial index"), not_null("abi"),
        between("bmi", 12.0, 80.0, "BMI in kg/m2"), not_null("bmi"),
        in_set("visit_interval_weeks", [1, 2], "seen weekly or fortnightly"),
    ]


def wound_expectations(time_column: str) -> list[Expectation]:
    """What is known about one wound per row at its first visit (cohort wounds, Feast wound_profile)."""
    return [
        non_empty(), not_null("wound_id"), unique("wound_id", why="one row per wound"),
        not_null("patient_id"), known_id("patient_id", "patient"), not_null(time_column),
        in_set("etiology", list(ETIOLOGIES), "a known wound etiology"), not_null("etiology"),
        in_set("body_site", BODY_SITES, "a known body site"), not_null("body_site"),
        gxe.ExpectColumnPairValuesToBeInSet(column_A="etiology", column_B="body_site", value_pairs_set=SITE_PAIRS,
                                            description="a body site where this kind of wound occurs"),
        *flag("infection"),
        between("duration_weeks", 0.0, 520.0, "weeks from onset to the first visit", strict_min=True),
    ]


def measurement_expectations(limits: QualityLimits, time_column: str) -> list[Expectation]:
    """One visit per row (cohort visits, Feast wound_history): order per wound and measurement ranges."""
    return [
        non_empty(), not_null("wound_id"), known_id("wound_id", "wound"), not_null("patient_id"),
        not_null(time_column), unique("wound_id", "week", why="one visit per wound and week"),
        between("week", 0, limits.follow_up_weeks, "within cohort.follow_up_weeks"), not_null("week"),
        between("week", 0, 0, "the first visit is week 0", **where("visit_index", 0)),
        between("weeks_since_previous", 1, None, "visit weeks increase per wound, in stored order"),
        between("visit_index_step", 1, 1, "visit indices count up by one per wound, in stored order"),
        between("area_cm2", 0.0, 1000.0, "area in cm2, never negative"), not_null("area_cm2"),
        between("depth_mm", 0.0, 100.0, "depth in mm, never negative"), not_null("depth_mm"),
        between("volume_cm3", 0.0, 1000.0, "volume in cm3, never negative"), not_null("volume_cm3"),
        *flag("closed"),
        between("area_cm2", 0.0, 0.0, "a closed wound has no area", **where("closed", True)),
        between("area_cm2", 0.0, None, "an open wound has an area", strict_min=True, **where("closed", False)),
    ]


def visit_expectations(limits: QualityLimits) -> list[Expectation]:
    return measurement_expectations(limits, "visit_date")


def history_expectations(limits: QualityLimits) -> list[Expectation]:
    """Feast wound_history: the visit measurements plus reduction since baseline and the history lists."""
    lists = ("week_history", "area_history", "depth_history", "volume_history")
    return [
        *measurement_expectations(limits, "event_timestamp"),
        between("pct_area_reduction", None, 100.0, "percent area reduction is at most 100"),
        not_null("pct_area_reduction"),
        between("pct_area_reduction", 0.0, 0.0, "no reduction at the first visit", **where("visit_index", 0)),
        between("pct_area_reduction", 100.0, 100.0, "a closed wound reduced by 100%", **where("closed", True)),
        at_least("weeks_since_onset", "week", "onset precedes the first visit"),
        *[equal(f"{name}_length", "visits_so_far", f"{name} holds every visit so far") for name in lists],
    ]


def outcome_flags() -> list[Expectation]:
    """healed and censored are each other's negation; the 12-week label is 0, 1 or unknown."""
    return [
        *flag("healed"), *flag("censored"),
        gxe.ExpectColumnPairValuesToBeInSet(column_A="healed", column_B="censored",
                                            value_pairs_set=[(True, False), (False, True)],
                                            description="censored exactly when closure was not seen"),
        in_set("healed_12w", [0, 1], "the 12-week label is 0, 1 or unknown (null)"),
        not_null("healed_12w", "a wound seen to heal has a known 12-week label", **where("healed", True)),
    ]


def outcome_expectations(limits: QualityLimits) -> list[Expectation]:
    return [
        non_empty(), not_null("wound_id"), unique("wound_id", why="one outcome per wound"),
        known_id("wound_id", "wound"), *outcome_flags(), *flag("lost_to_follow_up"),
        between("weeks_to_closure", 0, limits.follow_up_weeks, "closure or censoring within follow-up"),
        between("last_visit_week", 0, limits.follow_up_weeks, "last visit within follow-up"),
        equal("weeks_to_closure", "last_visit_week", "follow-up ends at closure or censoring"),
    ]


def oracle_expectations(limits: QualityLimits) -> list[Expectation]:
    probability = "a probability in [0, 1]"
    return [
        non_empty(), unique("wound_id", why="one row per wound"), known_id("wound_id", "wound"),
        between("oracle_p12_first_visit", 0.0, 1.0, probability), not_null("oracle_p12_first_visit"),
        between("oracle_p12_week4", 0.0, 1.0, probability), not_null("oracle_p12_week4"),
        between("par4", None, 100.0, "percent area reduction at week 4 is at most 100"),
        in_set("sheehan_healed", [0, 1], "Sheehan's rule says 0 or 1 (null: no week-4 visit)"),
        between("sheehan_p12", 0.0, 1.0, probability),
    ]


def truth_expectations(limits: QualityLimits) -> list[Expectation]:
    return [
        non_empty(), unique("wound_id", why="one row per wound"), known_id("wound_id", "wound"),
        between("shape_factor", 0.0, 1.0, "volume is a fraction of area x depth", strict_min=True, strict_max=True),
        between("weeks_to_closure", 0.0, None, "latent closure time is positive", strict_min=True),
        between("dropout_weeks", 0.0, None, "latent dropout time is positive", strict_min=True),
        in_set("healed_12w", [0, 1], "the latent 12-week outcome is 0 or 1"), not_null("healed_12w"),
        *[not_null(c) for c in ("log_area0", "log_depth0", "log_rate")],
    ]


def entity_row_expectations(limits: QualityLimits) -> list[Expectation]:
    """Feast training rows: one per wound and prediction week, labels as in the outcomes."""
    return [
        non_empty(), not_null("wound_id"), known_id("wound_id", "wound_profile"), not_null("event_timestamp"),
        unique("wound_id", "prediction_week", why="one row per wound and prediction week"),
        in_set("prediction_week", list(PREDICTION_WEEKS), "the prediction weeks of features.cohort.tables"),
        *outcome_flags(),
        between("weeks_to_closure", 0, limits.follow_up_weeks, "closure or censoring within follow-up"),
    ]


def cohort_patient_expectations(limits: QualityLimits) -> list[Expectation]:
    return patient_expectations("first_visit_date")


def cohort_wound_expectations(limits: QualityLimits) -> list[Expectation]:
    return [*wound_expectations("first_visit_date"),
            at_least("first_visit_date", "onset_date", "onset precedes the first visit")]


def risk_factor_expectations(limits: QualityLimits) -> list[Expectation]:
    return patient_expectations("event_timestamp")


def wound_profile_expectations(limits: QualityLimits) -> list[Expectation]:
    return wound_expectations("event_timestamp")
