"""Data-quality suites: every suite passes on good tiny data and names the broken expectation on bad copies."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from features.cohort import CohortConfig, generate_cohort
from features.io import ScanError, read_scan, write_ply
from features.phantoms import PhantomConfig, write_phantoms
from features.quality import (
    PARTS,
    SUITES,
    DataQualityError,
    Failure,
    QualityLimits,
    Result,
    load_tables,
    validate,
    validate_data,
)
from features.quality.cohort_suites import SITE_PAIRS
from features.quality.manifests import subsets_text, values_text
from features.quality.report import describe, suite_markdown
from features.quality.tables import cohort_tables, feature_tables

PHOTO_SIZE = (96, 80)  # (width, height): not square, so a transposed mask is caught too


def write_photo(folder: Path, stem: str, size: tuple[int, int], mask_value: int = 255, rng_seed: int = 0) -> None:
    """A noisy RGB JPEG and a binary PNG mask with a disc of `mask_value` in the middle."""
    rng = np.random.default_rng(rng_seed)
    width, height = size
    pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)  # (H, W, 3)
    Image.fromarray(pixels).save(folder / "images" / f"{stem}.jpg", quality=90)
    y, x = np.mgrid[:height, :width]
    disc = (x - width / 2) ** 2 + (y - height / 2) ** 2 < (min(size) / 5) ** 2
    Image.fromarray(np.where(disc, mask_value, 0).astype(np.uint8)).save(folder / "labels" / f"{stem}.png")


@pytest.fixture(scope="module")
def good_data(tmp_path_factory) -> Path:
    """data/ in miniature: 2 procedural phantoms, 4 photos with masks, a 40-patient cohort with its tables."""
    root = tmp_path_factory.mktemp("data")
    write_phantoms(2, root / "phantoms", 3, PhantomConfig(photos_dir=None))
    for sub in ("images", "labels"):
        (root / "photos" / sub).mkdir(parents=True)
    for i in range(4):
        write_photo(root / "photos", f"{i:04d}", PHOTO_SIZE, rng_seed=i)
    generate_cohort(CohortConfig(n_patients=40, seed=5), root / "cohort", root / "features" / "tables")
    return root


@pytest.fixture(scope="module")
def good_tables(good_data) -> dict[str, pd.DataFrame]:
    return load_tables(good_data)


def copy_part(good_data: Path, tmp_path: Path, part: str) -> Path:
    """A copy of one part of the good data (e.g. cohort) under tmp_path, keeping the data/ layout."""
    folder = PARTS[part][0]
    shutil.copytree(good_data / folder, tmp_path / folder)
    return tmp_path / folder


def target(failure: Failure) -> str:
    """The column an expectation checks, or its columns joined by commas."""
    arguments = failure.arguments
    columns = arguments.get("column_list") or [arguments.get("column") or arguments.get("column_A"),
                                                arguments.get("column_B")]
    return ",".join(c for c in columns if c)


def assert_reported(result: Result, expectation: str, column: str, offender: str) -> None:
    """The suite failed on that expectation, and its Markdown page names it with the offending row."""
    assert not result.success
    matching = [f for f in result.failures if (f.expectation, target(f)) == (expectation, column)]
    assert matching, [(f.expectation, target(f)) for f in result.failures]
    page = suite_markdown(result)
    section = page.split(f"### `{describe(matching[0])}`", 1)[1].split("###", 1)[0]
    assert offender in section, section


# ---------------------------------------------------------------------------------------------- good data


def not_strict_json(constant: str):
    raise AssertionError(f"{constant} in a report: not strict JSON")


def test_every_suite_passes_on_good_data_and_writes_its_report(good_data, tmp_path):
    summary = validate_data(good_data, tmp_path / "reports")
    assert summary["success"], summary
    assert set(summary["suites"]) == set(SUITES) and not summary["missing"] and not summary["skipped"]
    for name, suite in summary["suites"].items():
        assert suite["rows"] > 0 and suite["evaluated"] >= 8, name
        raw = json.loads((tmp_path / "reports" / f"{name}.json").read_text(), parse_constant=not_strict_json)
        assert raw["success"] and raw["suite_name"] == name
        assert "passed" in (tmp_path / "reports" / f"{name}.md").read_text()
    assert "12 suites run, 0 failed" in (tmp_path / "reports" / "index.md").read_text()


def test_the_checked_tables_describe_the_files(good_data, good_tables):
    scans, photos = good_tables["scans"], good_tables["photos"]
    assert list(scans["file"]) == ["phantom_0000.ply", "phantom_0001.ply"]
    scan = read_scan(good_data / "phantoms" / "phantom_0001.ply")
    row = scans.iloc[1]
    assert (row["n_points"], row["n_wound_points"]) == (len(scan), int(scan.label.sum()))
    assert row["extent_m"] == pytest.approx(np.ptp(scan.points, axis=0).max())
    assert row["tissue_values"] == values_text(scan.tissue) and row["label_values"] == "0,1"
    assert (photos[["width", "height"]].to_numpy() == PHOTO_SIZE).all()
    assert photos["mask_values"].eq("0,255").all() and photos["wound_fraction"].between(0.05, 0.3).all()
    history = good_tables["features_wound_history"]
    assert not any(c.endswith("_history") for c in history.columns)  # replaced by their lengths
    assert (history["area_history_length"] == history["visits_so_far"]).all()


# ---------------------------------------------------------------------------------------------- bad files


def test_a_nan_coordinate_stops_validate_data_with_only_the_reports_written(good_data, tmp_path):
    folder = copy_part(good_data, tmp_path / "data", "scans")
    scan = read_scan(folder / "phantom_0001.ply")
    scan.points[7] = np.nan
    write_ply(folder / "phantom_0001.ply", scan)
    out = tmp_path / "reports"
    with pytest.raises(DataQualityError, match=r"scans.*index\.md") as caught:
        validate_data(tmp_path / "data", out, required=("scans",))
    assert isinstance(caught.value, ScanError)  # the CLI's one-line, exit-2 path
    assert sorted(p.name for p in out.iterdir()) == ["index.md", "scans.json", "scans.md", "summary.json"]
    page = (out / "scans.md").read_text()
    assert "expect_column_values_to_be_null(column=error)" in page
    assert "phantom_0001.ply" in page and "NaN or infinite coordinates" in page
    summary = json.loads((out / "summary.json").read_text())
    assert summary["suites"]["scans"]["success"] is False and "photos" in summary["skipped"]


def test_a_scan_without_wound_points_or_truth_is_named(good_data, tmp_path):
    folder = copy_part(good_data, tmp_path, "scans")
    scan = read_scan(folder / "phantom_0000.ply")
    scan.label[:] = 0
    write_ply(folder / "phantom_0000.ply", scan)
    (folder / "phantom_0001.truth.json").unlink()
    result = validate("scans", load_tables(tmp_path)["scans"])
    assert_reported(result, "expect_column_values_to_be_between", "n_wound_points", "phantom_0000.ply")
    assert_reported(result, "expect_column_values_to_be_in_set", "label_values", "phantom_0000.ply")
    assert_reported(result, "expect_column_values_to_be_in_set", "has_truth", "phantom_0001.ply")


def test_a_mask_with_value_128_is_named(good_data, tmp_path):
    folder = copy_part(good_data, tmp_path, "photos")
    write_photo(folder, "0002", PHOTO_SIZE, mask_value=128)
    result = validate("photos", load_tables(tmp_path)["photos"])
    assert_reported(result, "expect_column_values_to_be_in_set", "mask_values", "0,128")
    assert_reported(result, "expect_column_values_to_be_in_set", "mask_values", "0002.jpg")


def test_a_mask_of_another_size_and_a_missing_mask_are_named(good_data, tmp_path):
    folder = copy_part(good_data, tmp_path, "photos")
    Image.new("L", (PHOTO_SIZE[1], PHOTO_SIZE[0])).save(folder / "labels" / "0001.png")  # transposed
    (folder / "labels" / "0003.png").unlink()
    result = validate("photos", load_tables(tmp_path)["photos"])
    assert_reported(result, "expect_column_pair_values_to_be_equal", "width,mask_width", "0001.jpg")
    assert_reported(result, "expect_column_pair_values_to_be_equal", "height,mask_height", "0001.jpg")
    assert_reported(result, "expect_column_values_to_be_in_set", "mask_exists", "0003.jpg")


def test_a_truncated_photo_is_named(good_data, tmp_path):
    folder = copy_part(good_data, tmp_path, "photos")
    photo = folder / "images" / "0000.jpg"
    photo.write_bytes(photo.read_bytes()[: photo.stat().st_size // 2])
    result = validate("photos", load_tables(tmp_path)["photos"])
    assert_reported(result, "expect_column_values_to_be_null", "error", "truncated")


# ---------------------------------------------------------------------------------------------- bad tables


def corrupt(good_data: Path, tmp_path: Path, part: str, table: str, change) -> dict[str, pd.DataFrame]:
    """Copy a part, apply `change` to one of its parquet tables, and rebuild the checked tables."""
    folder = copy_part(good_data, tmp_path, part)
    frame = pd.read_parquet(folder / f"{table}.parquet")
    change(frame).to_parquet(folder / f"{table}.parquet", index=False)
    return (cohort_tables if part == "cohort" else feature_tables)(folder)


def set_cell(column: str, row: int, value):
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[row, column] = value
        return frame
    return change


def test_a_negative_area_is_named_with_its_wound_and_week(good_data, tmp_path):
    tables = corrupt(good_data, tmp_path, "cohort", "visits", set_cell("area_cm2", 3, -1.5))
    row = tables["visits"].iloc[3]
    result = validate("cohort_visits", tables["visits"])
    assert_reported(result, "expect_column_values_to_be_between", "area_cm2", row["wound_id"])
    assert "-1.5" in suite_markdown(result)


def test_an_unknown_etiology_is_named(good_data, tmp_path):
    tables = corrupt(good_data, tmp_path, "cohort", "wounds", set_cell("etiology", 0, "burn"))
    result = validate("cohort_wounds", tables["wounds"])
    assert_reported(result, "expect_column_values_to_be_in_set", "etiology", "burn")
    assert_reported(result, "expect_column_pair_values_to_be_in_set", "etiology,body_site", "burn")


def test_a_duplicated_wound_id_is_named(good_data, tmp_path):
    def duplicate_first(frame: pd.DataFrame) -> pd.DataFrame:
        return pd.concat([frame, frame.iloc[[0]]], ignore_index=True)

    tables = corrupt(good_data, tmp_path, "features", "wound_profile", duplicate_first)
    first = tables["wound_profile"]["wound_id"].iloc[0]
    assert_reported(validate("features_wound_profile", tables["wound_profile"]),
                    "expect_column_values_to_be_unique", "wound_id", first)


def test_visits_out_of_order_and_orphans_are_named(good_data, tmp_path):
    visits = pd.read_parquet(good_data / "cohort" / "visits.parquet")
    longest = visits["wound_id"].value_counts().idxmax()  # at least three visits
    rows = visits.index[visits["wound_id"] == longest]

    def swap_and_orphan(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[[rows[1], rows[2]], "week"] = frame.loc[[rows[2], rows[1]], "week"].to_numpy()
        frame.loc[rows[-1], "week"] = 30  # after the end of follow-up
        frame.loc[0 if rows[0] else len(frame) - 1, "wound_id"] = "W999999"
        return frame

    tables = corrupt(good_data, tmp_path, "cohort", "visits", swap_and_orphan)
    result = validate("cohort_visits", tables["visits"])
    assert_reported(result, "expect_column_values_to_be_between", "weeks_since_previous", longest)
    assert_reported(result, "expect_column_values_to_be_between", "week", "30")
    assert_reported(result, "expect_column_values_to_be_in_set", "wound_id_known", "W999999")


def test_history_rules_percent_reduction_and_hba1c(good_data, tmp_path):
    history = corrupt(good_data, tmp_path, "features", "wound_history", set_cell("pct_area_reduction", 2, 130.0))
    result = validate("features_wound_history", history["wound_history"])
    assert_reported(result, "expect_column_values_to_be_between", "pct_area_reduction", "130")
    patients = pd.read_parquet(good_data / "cohort" / "patients.parquet")
    healthy = patients.index[~patients["diabetes"]][0]
    patients.loc[healthy, "hba1c"] = 7.0
    assert_reported(validate("cohort_patients", patients), "expect_column_values_to_be_null", "hba1c",
                    patients.loc[healthy, "patient_id"])


def test_a_dropped_column_is_reported_not_raised(good_tables):
    result = validate("cohort_outcomes", good_tables["cohort_outcomes"].drop(columns=["healed"]))
    broken = [f for f in result.failures if f.arguments.get("column") == "healed"]
    assert broken and all(f.error and "healed" in f.error for f in broken)
    assert "Could not be evaluated" in suite_markdown(result)


# ---------------------------------------------------------------------------------------------- plumbing


def test_a_missing_required_part_fails_and_an_optional_one_is_skipped(good_data, tmp_path):
    copy_part(good_data, tmp_path / "data", "photos")
    summary = validate_data(tmp_path / "data", tmp_path / "ok", required=("photos",))
    assert list(summary["suites"]) == ["photos"] and "scans" in summary["skipped"]
    with pytest.raises(DataQualityError, match="cohort_visits"):
        validate_data(tmp_path / "data", tmp_path / "bad", required=("photos", "cohort"))
    assert "MISSING" in (tmp_path / "bad" / "index.md").read_text()


def test_bad_arguments_raise_value_error(good_tables, tmp_path):
    with pytest.raises(ValueError, match="unknown suite"):
        validate("nope", good_tables["photos"])
    with pytest.raises(ValueError, match="unknown data parts"):
        validate_data(tmp_path, tmp_path / "r", required=("pictures",))
    for bad in ({"extent_m": (0.5, 0.1)}, {"max_empty_masks": 1.5}, {"max_points": 0}):
        with pytest.raises(ValueError):
            QualityLimits(**bad)


def test_limits_come_from_the_params_sections():
    limits = QualityLimits.from_params({"photo_px": [32, 1024], "unknown": 1}, {"max_points": 1000,
                                       "min_wound_points": 5}, {"follow_up_weeks": 12})
    assert (limits.photo_px, limits.max_points, limits.min_wound_points, limits.follow_up_weeks) == \
        ((32, 1024), 1000, 5, 12)


def test_limits_for_a_profile_read_params_yaml(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("measure:\n  max_points: 900\n  profiles:\n    full: {max_points: 9000}\n"
                      "quality:\n  max_empty_masks: 0.2\ncohort:\n  follow_up_weeks: 16\n")
    demo, full = QualityLimits.for_profile("demo", params), QualityLimits.for_profile("full", params)
    assert (demo.max_points, full.max_points, demo.max_empty_masks, demo.follow_up_weeks) == (900, 9000, 0.2, 16)
    assert demo.min_wound_points == QualityLimits().min_wound_points  # absent keys keep their defaults


def test_value_sets_as_text():
    assert values_text(np.array([[255, 0], [0, 255]], dtype=np.uint8)) == "0,255"
    assert subsets_text([0, 255]) == ["0", "255", "0,255"]
    assert len(subsets_text(range(5))) == 31 and "1,2,4" in subsets_text(range(5))
    assert ("pressure_injury", "sacrum") in SITE_PAIRS and ("venous_leg_ulcer", "sacrum") not in SITE_PAIRS
