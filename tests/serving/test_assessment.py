"""assess(): measurements flow through with true labels, no-wound and unmeasurable scans give flags not errors,
plausibility rules, JSON output, bad inputs, scan bytes, and the prognosis with a real (small) XGBoost."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from features.io import ScanError, read_scan, write_pcd, write_ply
from serving.assessment import MEASUREMENTS, PointProbabilities, assess, read_scan_bytes
from serving.plausibility import PlausibilityRules, edge_distance, measurement_flags
from tests.conftest import bowl_scan
from tests.serving.conftest import tiny_ensemble


def truth_probabilities(scan) -> PointProbabilities:
    """The true labels as certain probabilities: a perfect point network."""
    tissue = None if scan.tissue is None else np.eye(5)[scan.tissue]
    return PointProbabilities(scan.label.astype(float), tissue)


def codes(result: dict) -> list[str]:
    return [f["code"] for f in result["flags"]]


def as_json(result: dict) -> dict:
    return json.loads(json.dumps(result, allow_nan=False))  # raises on NaN or a non-JSON type


# ------------------------------------------------------------------------------------------------ flow


def test_true_labels_give_the_phantom_area_within_3_percent(limb_phantom):
    scan, truth = limb_phantom.scan, limb_phantom.truth
    result = as_json(assess(tiny_ensemble(), scan, point_probabilities=truth_probabilities(scan)))
    assert abs(result["area_cm2"] / truth["area_cm2"] - 1) < 0.03
    assert abs(result["max_depth_mm"] / truth["max_depth_mm"] - 1) < 0.1
    assert result["flags"] == []
    # the growth below the skin (models.wound_growth) may take in edge points whose noise sits deep
    assert int(scan.label.sum()) <= result["segmentation"]["wound_points"] <= 1.02 * scan.label.sum()
    assert result["segmentation"]["mean_confidence"] == 1.0 and result["segmentation"]["photo_used"] is False
    for name in MEASUREMENTS:
        low, high = result["uncertainty"][name]
        assert low <= result[name] <= high
        assert 0.0 < result["confidence"][name] <= 1.0
    assert abs(sum(result["tissue"].values()) - 1) < 1e-6
    assert result["models"] == {"coherency-points": "7"} and result["data_version"] == "md5-of-data"


def test_untrained_ensemble_with_a_photo_runs_and_returns_json(limb_phantom):
    scan = limb_phantom.scan
    result = as_json(assess(tiny_ensemble(), scan, limb_phantom.photo, limb_phantom.camera))
    seg = result["segmentation"]
    assert seg["points"] == len(scan) and seg["photo_used"] is True
    assert 0.0 <= seg["photo_coverage"] <= 1.0 and 0.5 <= seg["mean_confidence"] <= 1.0
    assert all(v is None or 0.0 <= v <= 1.0 for v in result["confidence"].values())
    # near-random labels: either measured or flagged, never an exception; a null value always has a flag
    if result["area_cm2"] is None:
        assert {"no_wound", "not_measurable"} & set(codes(result))


def test_a_scan_without_a_wound_gives_the_no_wound_flag_and_null_measurements():
    scan = replace(bowl_scan(seed=1), label=None)
    nothing = PointProbabilities(np.zeros(len(scan)), None)
    result = as_json(assess(tiny_ensemble(), scan, point_probabilities=nothing))
    assert codes(result) == ["no_wound"]
    assert all(result[name] is None and result["confidence"][name] is None for name in MEASUREMENTS)
    assert result["segmentation"]["wound_points"] == 0 and result["uncertainty"] is None


def test_too_few_wound_points_are_flagged_and_an_unmeasurable_scan_is_not_an_error():
    scan = bowl_scan(seed=2)
    centre = scan.points[scan.label == 1].mean(axis=0)
    nearest = np.argsort(np.linalg.norm(scan.points - centre, axis=1))
    for n_wound, expected in ((60, {"too_few_wound_points"}), (10, {"too_few_wound_points", "not_measurable"})):
        probs = np.zeros(len(scan))
        probs[nearest[:n_wound]] = 1.0
        result = as_json(assess(tiny_ensemble(), scan, point_probabilities=PointProbabilities(probs, None)))
        assert expected <= set(codes(result)), result["flags"]
    assert result["area_cm2"] is None  # the engine needs 30 wound points


def test_the_outline_is_a_closed_polyline_on_the_skin_around_the_wound():
    scan, local = bowl_frame(5)
    result = as_json(assess(tiny_ensemble(), scan, point_probabilities=truth_probabilities(scan)))
    outline = np.asarray(result["outline"]) @ Rotation.random(random_state=5).as_matrix()  # the bowl's frame
    assert 20 <= len(outline) <= 200 and np.allclose(outline[0], outline[-1])
    wound = scan.label == 1
    radius = np.linalg.norm(outline[:, :2] - local[wound, :2].mean(axis=0), axis=1)
    assert np.all(np.abs(radius - 0.010) < 1e-3)  # the bowl's 10 mm rim, to a point spacing or so
    assert np.all(np.abs(outline[:, 2] - np.median(local[~wound, 2])) < 1e-3)  # on the skin, not in the bed


# ------------------------------------------------------------------------------------------------ rules


def test_implausible_measurements_are_flagged_and_plausible_ones_are_not():
    plausible = {"area_cm2": 4.0, "volume_cm3": 0.8, "max_depth_mm": 5.0, "width_cm": 1.8}
    assert measurement_flags(plausible, PlausibilityRules()) == []
    deep = {**plausible, "max_depth_mm": 25.0}  # deeper than the 18 mm wide opening
    assert [f["code"] for f in measurement_flags(deep, PlausibilityRules())] == ["depth_exceeds_opening"]
    assert measurement_flags(deep, PlausibilityRules(max_depth_to_width=1.5)) == []
    bulky = {**plausible, "volume_cm3": 2.5}  # more than 4 cm2 x 0.5 cm
    assert [f["code"] for f in measurement_flags(bulky, PlausibilityRules())] == ["volume_exceeds_bound"]
    shadowed = {**plausible, "quality": {"unseen_share": 0.12}}  # a rim's shadow: usual
    assert measurement_flags(shadowed, PlausibilityRules()) == []
    hollow = {**plausible, "quality": {"unseen_share": 0.34}}  # skin marked wound opens an empty region
    assert [f["code"] for f in measurement_flags(hollow, PlausibilityRules())] == ["opening_mostly_unseen"]


def bowl_frame(seed: int):
    """The bowl scan and its points in the bowl's own frame (skin plane = first two coordinates)."""
    scan = bowl_scan(seed=seed)
    return scan, scan.points @ Rotation.random(random_state=seed).as_matrix()  # undoes the pose, bar a shift


def test_a_wound_cut_by_the_scan_edge_is_flagged():
    scan, local = bowl_frame(3)
    centre_u = local[scan.label == 1, 0].mean()
    whole = as_json(assess(tiny_ensemble(), scan, point_probabilities=truth_probabilities(scan)))
    assert "wound_at_scan_edge" not in codes(whole)
    cut = scan.subset(local[:, 0] < centre_u + 0.005)  # half the 10 mm radius beyond the centre
    assert edge_distance(cut.points, cut.label == 1) < 1e-3
    result = as_json(assess(tiny_ensemble(), cut, point_probabilities=truth_probabilities(cut)))
    assert "wound_at_scan_edge" in codes(result)


def test_edge_distance_is_the_gap_between_wound_and_outline():
    scan, local = bowl_frame(4)
    wound_u = local[scan.label == 1, 0]
    # the bowl's wound (radius 10 mm) sits in the middle of a 60 mm square: about 20 mm from every side
    expected = min(wound_u.min() - local[:, 0].min(), local[:, 0].max() - wound_u.max())
    assert edge_distance(scan.points, scan.label == 1) == pytest.approx(expected, abs=1.5e-3)
    assert edge_distance(scan.points, np.zeros(len(scan), bool)) is None


@pytest.mark.parametrize("bad", [{"min_wound_points": 0}, {"min_wound_points": 2.5}, {"max_depth_to_width": 0.0},
                                 {"volume_tolerance": -0.1}, {"edge_margin_mm": float("nan")}])
def test_bad_rules_raise(bad):
    with pytest.raises(ValueError, match="PlausibilityRules"):
        PlausibilityRules(**bad)
    with pytest.raises(ValueError, match="unknown"):
        PlausibilityRules.from_dict({"edge_margin": 3.0})


# ------------------------------------------------------------------------------------------------ inputs


def test_a_photo_without_its_camera_or_of_another_size_is_a_value_error(limb_phantom):
    ensemble, scan, photo = tiny_ensemble(), limb_phantom.scan, limb_phantom.photo
    with pytest.raises(ValueError, match="camera"):
        assess(ensemble, scan, photo)
    with pytest.raises(ValueError, match="resolution"):
        assess(ensemble, scan, photo[:256], limb_phantom.camera)
    with pytest.raises(ValueError, match="uint8"):
        assess(ensemble, scan, photo.astype(float), limb_phantom.camera)


def test_precomputed_probabilities_of_the_wrong_length_are_a_value_error(limb_phantom):
    with pytest.raises(ValueError, match="shape"):
        assess(tiny_ensemble(), limb_phantom.scan, point_probabilities=PointProbabilities(np.zeros(10), None))


@pytest.mark.parametrize("writer, suffix", [(write_ply, ".ply"), (write_pcd, "pcd")])
def test_scan_bytes_read_like_files(tmp_path, writer, suffix):
    scan = bowl_scan(seed=5, tissue=True)
    path = tmp_path / f"scan.{suffix.lstrip('.')}"
    writer(path, scan)
    from_bytes, from_file = read_scan_bytes(path.read_bytes(), suffix), read_scan(path)
    np.testing.assert_array_equal(from_bytes.points, from_file.points)
    np.testing.assert_array_equal(from_bytes.label, scan.label)
    np.testing.assert_array_equal(from_bytes.tissue, scan.tissue)


def test_bad_scan_bytes_raise_scan_errors_that_do_not_name_a_temporary_file():
    with pytest.raises(ScanError, match="the uploaded PLY scan") as error:
        read_scan_bytes(b"ply\nformat nonsense\n", ".ply")
    assert "/tmp" not in str(error.value)
    with pytest.raises(ScanError, match="unsupported"):
        read_scan_bytes(b"", ".obj")


# ------------------------------------------------------------------------------------------------ prognosis


class BundleAsPyfunc:
    """The prognosis bundle's own predict() behind the pyfunc call signature (what mlflow.pyfunc.load_model gives)."""

    def __init__(self, bundle) -> None:
        self.bundle = bundle

    def predict(self, frame):
        return self.bundle.predict(None, frame)


@pytest.fixture(scope="module")
def prognosis():
    from models.gbm import GBMConfig, fit_gbm
    from models.mlflow_models.prognosis import PrognosisBundle
    from tests.models.cohort_frames import cohort_tables, first_visit_frame

    frame = first_visit_frame(cohort_tables(150, seed=3))
    val = frame["patient_id"].str[-1].isin(["0", "1", "2"])
    bundle = PrognosisBundle()
    bundle.gbm, bundle.sequence, bundle.fusion = fit_gbm(frame[~val], frame[val], GBMConfig(rounds=40)), None, {}
    return BundleAsPyfunc(bundle), frame


def test_prognosis_runs_on_the_history_with_this_scans_measurements(prognosis):
    model, frame = prognosis
    scan = bowl_scan(seed=6)
    history = frame.drop(columns=["area_cm2", "volume_cm3", "depth_mm"]).iloc[0].to_dict()
    ensemble = tiny_ensemble(prognosis=model)
    result = as_json(assess(ensemble, scan, history=history, point_probabilities=truth_probabilities(scan)))
    measured = frame.iloc[:1].assign(area_cm2=result["area_cm2"], volume_cm3=result["volume_cm3"],
                                     depth_mm=result["max_depth_mm"], frame="first_visit")
    expected = model.predict(measured)
    assert result["prognosis"]["wound_id"] == history["wound_id"]
    assert result["prognosis"]["p_gbm"] == pytest.approx(float(expected["p_gbm"][0]))
    assert 0.0 < result["prognosis"]["p_gbm"] < 1.0
    # without history, or without the wound's size (no wound found), there is no prognosis
    assert assess(ensemble, scan, point_probabilities=truth_probabilities(scan))["prognosis"] is None
    nothing = PointProbabilities(np.zeros(len(scan)), None)
    assert assess(ensemble, scan, history=history, point_probabilities=nothing)["prognosis"] is None
