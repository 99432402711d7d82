"""What the data must satisfy: limits from params.yaml, and the suites of the scan manifest and photo set.

A suite is a list of Great Expectations expectations built in code; each carries a `description` that says,
for the report, why the check matters. The cohort and feature-table suites are in cohort_suites.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import great_expectations.expectations as gxe
from great_expectations.expectations import Expectation
from great_expectations.expectations.row_conditions import Column

from features.io import DEFAULT_MAX_POINTS, MAX_EXTENT_M, TISSUE_CLASSES
from features.params import DEFAULT_PATH, load_params
from features.quality.manifests import subsets_text


@dataclass(frozen=True)
class QualityLimits:
    """Thresholds the suites check against; from params.yaml (measure, cohort and quality sections)."""

    max_points: int = DEFAULT_MAX_POINTS  # measure.max_points: larger scans are refused by the engine
    min_wound_points: int = 30  # measure.min_wound_points: fewer and the engine refuses to measure
    follow_up_weeks: int = 24  # cohort.follow_up_weeks: no visit after it
    extent_m: tuple[float, float] = (0.01, MAX_EXTENT_M)  # a wound scan spans centimetres, not metres
    photo_px: tuple[int, int] = (64, 4096)  # smallest and largest photo side
    max_wound_fraction: float = 0.5  # of a photo's pixels: the photos are framed on the wound and its skin
    max_empty_masks: float = 0.05  # fraction of photos whose mask marks no wound (FUSeg: 19 of 810)

    def __post_init__(self) -> None:
        if self.max_points < 1 or self.min_wound_points < 0 or self.follow_up_weeks < 0:
            raise ValueError("quality: max_points must be >= 1, min_wound_points and follow_up_weeks >= 0")
        for name in ("extent_m", "photo_px"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(f"quality.{name} must be [low, high] with 0 < low <= high, got {[low, high]}")
        for name in ("max_wound_fraction", "max_empty_masks"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"quality.{name} must be a fraction in [0, 1], got {getattr(self, name)}")

    @classmethod
    def from_params(cls, quality: dict, measure: dict | None = None, cohort: dict | None = None) -> QualityLimits:
        """Build from the params.yaml sections (each already resolved for the profile; unknown keys ignored)."""
        measure, cohort = measure or {}, cohort or {}
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in quality.items() if k in known}
        for key in ("max_points", "min_wound_points"):
            if key in measure:
                values[key] = int(measure[key])
        if "follow_up_weeks" in cohort:
            values["follow_up_weeks"] = int(cohort["follow_up_weeks"])
        for key in ("extent_m", "photo_px"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)


    @classmethod
    def for_profile(cls, profile: str = "demo", path: str | Path = DEFAULT_PATH) -> QualityLimits:
        """The limits of a params.yaml profile: its quality section, measure's point limits, cohort's follow-up."""
        return cls.from_params(*(load_params(stage, profile, path) for stage in ("quality", "measure", "cohort")))


@dataclass(frozen=True)
class SuiteSpec:
    """A suite: which table it checks, the columns that name a row in reports, and its expectations."""

    table: str
    id_columns: tuple[str, ...]
    expectations: Callable[[QualityLimits], list[Expectation]]


# ---------------------------------------------------------------------------------------------- shorthands


def between(column: str, low: float | None = None, high: float | None = None, why: str = "", **kw) -> Expectation:
    return gxe.ExpectColumnValuesToBeBetween(column=column, min_value=low, max_value=high, description=why, **kw)


def in_set(column: str, values: list, why: str = "", **kw) -> Expectation:
    return gxe.ExpectColumnValuesToBeInSet(column=column, value_set=values, description=why, **kw)


def unique(*columns: str, why: str = "") -> Expectation:
    if len(columns) == 1:
        return gxe.ExpectColumnValuesToBeUnique(column=columns[0], description=why)
    return gxe.ExpectCompoundColumnsToBeUnique(column_list=list(columns), description=why)


def not_null(column: str, why: str = "", **kw) -> Expectation:
    return gxe.ExpectColumnValuesToNotBeNull(column=column, description=why, **kw)


def equal(column_a: str, column_b: str, why: str = "") -> Expectation:
    # a missing side is another check's failure (an unreadable file, an absent truth), not a mismatch
    return gxe.ExpectColumnPairValuesToBeEqual(column_A=column_a, column_B=column_b, description=why,
                                               ignore_row_if="either_value_is_missing")


def at_least(column_a: str, column_b: str, why: str = "") -> Expectation:
    return gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A=column_a, column_B=column_b, or_equal=True,
                                                       description=why, ignore_row_if="either_value_is_missing")


def non_empty(why: str = "the table has rows") -> Expectation:
    return gxe.ExpectTableRowCountToBeBetween(min_value=1, description=why)


def where(column: str, value: object) -> dict:
    """Keyword arguments restricting an expectation to the rows where `column` equals `value`."""
    return {"row_condition": Column(column) == value}


def known_id(column: str, parent: str) -> Expectation:
    return in_set(f"{column}_known", [True], f"every {column} appears in the {parent} table")


# ---------------------------------------------------------------------------------------------- files


def scan_expectations(limits: QualityLimits) -> list[Expectation]:
    """The scan manifest: readable, finite, in metres, within the engine's point limits, valid label sets."""
    return [
        non_empty("the folder holds at least one scan"),
        unique("file"),
        gxe.ExpectColumnValuesToBeNull(column="error", description="features.io.read_scan accepts every scan"),
        between("n_points", 1, limits.max_points, "within measure.max_points"),
        between("n_wound_points", limits.min_wound_points, None, "at least measure.min_wound_points wound points"),
        between("finite_fraction", 1.0, 1.0, "every coordinate is finite"),
        between("extent_m", *limits.extent_m, "the scan spans centimetres to metres (coordinates in metres)"),
        in_set("label_values", ["0,1"], "both intact skin (0) and wound (1) points, nothing else"),
        in_set("tissue_values", subsets_text(TISSUE_CLASSES), "tissue classes within 0..4"),
        between("tissue_outside_wound", 0, 0, "tissue classes only on wound points"),
        in_set("has_colors", [True], "the scan carries colour (the models read it)"),
        in_set("has_camera", [True], "a NAME.camera.json beside the scan"),
        in_set("has_meta", [True], "a NAME.meta.json beside the scan"),
        unique("wound_id", why="one scan per wound id"),
        in_set("has_truth", [True], "a phantom carries NAME.truth.json"),
        equal("n_points", "truth_points", "the truth describes this very scan (point count)"),
        equal("n_wound_points", "truth_wound_points", "the truth describes this very scan (wound points)"),
        equal("has_tissue", "truth_has_tissue", "tissue labels exactly where the truth has tissue fractions"),
    ]


def photo_expectations(limits: QualityLimits) -> list[Expectation]:
    """The photo set: decodable, every photo with a same-size binary mask, plausible wound areas."""
    low, high = limits.photo_px
    return [
        non_empty("the folder holds at least one photo"),
        unique("file"),
        gxe.ExpectColumnValuesToBeNull(column="error", description="every photo and mask decodes"),
        in_set("mask_exists", [True], "labels/NAME.png beside every images/NAME photo"),
        in_set("mode", ["RGB"], "colour photos"),
        between("width", low, high, "photo size within quality.photo_px"),
        between("height", low, high, "photo size within quality.photo_px"),
        equal("width", "mask_width", "mask as wide as its photo"),
        equal("height", "mask_height", "mask as tall as its photo"),
        in_set("mask_mode", ["L"], "masks are 8-bit single-channel"),
        in_set("mask_values", subsets_text([0, 255]), "mask values only 0 (not wound) and 255 (wound)"),
        between("wound_fraction", 0.0, limits.max_wound_fraction, "wound within quality.max_wound_fraction"),
        between("wound_fraction", 0.0, None, "masks mark a wound (at most quality.max_empty_masks empty)",
                strict_min=True, mostly=1.0 - limits.max_empty_masks),
    ]
