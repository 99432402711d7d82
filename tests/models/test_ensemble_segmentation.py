"""Segmentation fusion: projection onto the photo, occlusion, log-odds fusion, and labels the engine can measure."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial import cKDTree

from features.io import Camera, Scan
from features.measure import measure
from features.phantoms import Phantom, PhantomConfig, make_phantom
from models.ensemble import (
    FusionConfig,
    Occlusion,
    fuse_segmentation,
    fuse_wound_probability,
    labelled_scan,
    project_points,
    sample_photo_probability,
)


@pytest.fixture(scope="module")
def phantom() -> Phantom:
    # a limb phantom with ~2,700 wound points; procedural texture, so the test does not depend on data/
    return make_phantom(1, PhantomConfig(texture="procedural", photos_dir=None), seed=5)


def truth_map(scan: Scan, camera: Camera) -> np.ndarray:
    """A 'perfect' photo probability map: the true labels splatted through the camera, holes filled, blurred."""
    pixels, _, visible = project_points(scan.points, camera)
    rows, cols = np.rint(pixels[visible, 1]).astype(int), np.rint(pixels[visible, 0]).astype(int)
    hits, wound = np.zeros((camera.height, camera.width)), np.zeros((camera.height, camera.width))
    np.add.at(hits, (rows, cols), 1.0)
    np.add.at(wound, (rows, cols), scan.label[visible].astype(float))
    _, (r, c) = ndimage.distance_transform_edt(hits == 0, return_indices=True)
    share = (wound / np.maximum(hits, 1.0))[r, c]
    return np.clip(ndimage.gaussian_filter(share, 1.0), 0.0, 1.0)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def flat_camera(width: int = 200, height: int = 100, f: float = 500.0) -> Camera:
    """At the origin, looking along +z; the principal point at the image centre."""
    return Camera(width, height, f, f, (width - 1) / 2, (height - 1) / 2, np.eye(4))


# ------------------------------------------------------------------------------------------------ (a) the phantom


def test_projected_points_find_their_own_colour_in_the_photo(phantom):
    """The photo was rendered by this camera, so each visible point's colour is the photo's colour there;
    a camera off by 5 pixels puts the wound points on the wrong colours."""
    scan, wound = phantom.scan, phantom.scan.label == 1

    def colour_error(camera: Camera) -> float:
        pixels, _, visible = project_points(scan.points, camera)
        photo = np.stack([sample_photo_probability(phantom.photo[..., k] / 255.0, pixels, visible)
                          for k in range(3)], axis=1) * 255.0
        seen = visible & wound
        return float(np.median(np.abs(photo[seen] - scan.colors[seen]).mean(axis=1)))

    right, shifted = colour_error(phantom.camera), colour_error(replace(phantom.camera, cx=phantom.camera.cx + 5))
    assert right < 6.0  # grey levels of 255: shading and colour noise only
    assert shifted > 2 * right


def test_fusion_with_a_perfect_photo_repairs_a_wrong_point_network(phantom):
    scan, truth = phantom.scan, phantom.scan.label == 1
    rng = np.random.default_rng(1)
    # the kind of error a point network makes: a rim of skin called wound, patches of wound missed
    rim = cKDTree(scan.points[truth]).query(scan.points, distance_upper_bound=0.004)[0] < 0.004
    point_prob = np.where(truth, 0.9, 0.1)
    point_prob[rim & ~truth] = 0.75
    point_prob[truth & (rng.random(len(scan)) < 0.3)] = 0.3
    point_prob = np.clip(point_prob + rng.normal(0.0, 0.05, len(scan)), 0.0, 1.0)

    fused = fuse_segmentation(scan, point_prob, None, truth_map(scan, phantom.camera), phantom.camera)
    alone, together = iou(point_prob >= 0.5, truth), iou(fused.label == 1, truth)
    assert alone < 0.5  # seen: 0.41
    assert together > 0.9  # seen: 0.95
    assert fused.photo_coverage > 0.95  # the photo camera sees nearly all of this wound
    assert fused.tissue is None


# ------------------------------------------------------------------------------------------------ (b) occlusion


def occluded_scene(seed: int = 0) -> tuple[np.ndarray, int, int]:
    """A noisy 2 cm skin patch at 30 cm, a point 3 cm behind its centre, and one 3 cm back beside it."""
    rng = np.random.default_rng(seed)
    g = np.arange(-0.01, 0.01, 5e-4)
    u, v = (a.ravel() for a in np.meshgrid(g, g))
    patch = np.column_stack([u, v, 0.30 + rng.normal(0.0, 5e-4, u.size)])
    behind, beside = [0.0, 0.0, 0.33], [0.03, 0.0, 0.33]
    return np.vstack([patch, behind, beside]), len(patch), len(patch) + 1


def test_a_point_behind_the_surface_is_hidden_and_the_surface_is_not():
    points, behind, beside = occluded_scene()
    _, depth, visible = project_points(points, flat_camera())
    assert not visible[behind]
    assert visible[beside]
    assert visible[:behind].mean() > 0.999  # range noise does not make the patch hide itself
    assert depth[behind] == pytest.approx(0.33)


def test_a_steep_surface_does_not_hide_itself():
    g = np.arange(-0.01, 0.01, 5e-4)
    u, v = (a.ravel() for a in np.meshgrid(g, g))
    slope = np.tan(np.radians(65.0))
    points = np.column_stack([u, v, 0.30 + slope * u])
    assert project_points(points, flat_camera())[2].all()


def test_pixels_follow_the_documented_convention():
    camera = flat_camera()
    pixels, _, visible = project_points(np.array([[0.0, 0.0, 0.5], [0.01, -0.02, 0.5]]), camera)
    np.testing.assert_allclose(pixels, [[camera.cx, camera.cy], [camera.cx + 10.0, camera.cy - 20.0]])
    ramp = np.tile(np.arange(camera.width) / camera.width, (camera.height, 1))  # bilinear is exact on it
    np.testing.assert_allclose(sample_photo_probability(ramp, pixels, visible), pixels[:, 0] / camera.width)


# ------------------------------------------------------------------------------------------------ (c) unseen points


def test_points_the_photo_cannot_see_keep_the_point_probability():
    camera = flat_camera()
    points = np.array([[0.0, 0.0, 0.3], [0.5, 0.0, 0.3], [0.0, 0.0, -0.3], [0.0, 0.0, 0.0005]])  # in, right, behind, at
    scan = Scan(points, label=np.zeros(4, np.uint8))
    point_prob = np.array([0.4, 0.4, 0.7, 0.2])
    tissue = np.eye(5)[[2, 3, 1, 4]]
    fused = fuse_segmentation(scan, point_prob, tissue, np.full((100, 200), 0.9), camera)
    assert not np.isnan(fused.photo_prob[0]) and np.isnan(fused.photo_prob[1:]).all()
    np.testing.assert_array_equal(fused.wound_prob[1:], point_prob[1:])
    assert fused.wound_prob[0] == pytest.approx(0.4 * 0.9 / (0.4 * 0.9 + 0.6 * 0.1))  # odds multiply
    np.testing.assert_array_equal(fused.label, [1, 0, 1, 0])
    np.testing.assert_array_equal(fused.tissue, [2, 0, 1, 0])  # argmax on wound points only
    np.testing.assert_allclose(fused.confidence, np.maximum(fused.wound_prob, 1 - fused.wound_prob))
    assert fused.photo_coverage == pytest.approx(0.5)  # of the two wound points, the photo saw one


def test_without_a_photo_the_point_network_decides_alone():
    rng = np.random.default_rng(3)
    point_prob = rng.random(50)
    fused = fuse_segmentation(Scan(rng.normal(size=(50, 3))), point_prob, None, None, None)
    np.testing.assert_array_equal(fused.wound_prob, point_prob)
    assert fused.photo_coverage == 0.0


def test_the_weights_set_how_far_each_model_is_trusted():
    point, photo = np.array([0.2, 0.2]), np.array([0.9, np.nan])
    trusting = fuse_wound_probability(point, photo, FusionConfig(weight_points=0.2, weight_photo=1.0))
    doubting = fuse_wound_probability(point, photo, FusionConfig(weight_points=1.0, weight_photo=0.2))
    assert trusting[0] > 0.5 > doubting[0]
    assert trusting[1] == doubting[1] == 0.2
    certain = fuse_wound_probability(np.array([0.0]), np.array([1.0]))  # clipped alike: neither vetoes
    assert certain[0] == pytest.approx(0.5)


# ------------------------------------------------------------------------------------------------ (d) bad input


@pytest.mark.parametrize(("change", "message"), [
    ({"camera": None}, "together"),
    ({"photo": None}, "together"),
    ({"photo": np.zeros((100, 100))}, "100x100 pixels"),
    ({"photo": np.full((100, 200), np.nan)}, "finite values"),
    ({"point": np.full(3, 0.5)}, "shape"),
    ({"point": np.array([0.5, np.nan, 0.5, 0.5])}, "NaN"),
    ({"point": np.array([0.5, 1.5, 0.5, 0.5])}, r"\[0, 1\]"),
    ({"tissue": np.full((4, 4), 0.25)}, "point_tissue_prob"),
])
def test_bad_input_is_refused_with_a_clear_message(change, message):
    scan = Scan(np.array([[0.0, 0.0, 0.3], [0.01, 0.0, 0.3], [0.0, 0.01, 0.3], [0.01, 0.01, 0.3]]))
    args = {"point": np.full(4, 0.5), "tissue": np.full((4, 5), 0.2), "photo": np.full((100, 200), 0.5),
            "camera": flat_camera(), **change}
    with pytest.raises(ValueError, match=message):
        fuse_segmentation(scan, args["point"], args["tissue"], args["photo"], args["camera"])


@pytest.mark.parametrize("values", [
    {"weight_photo": -1.0}, {"weight_points": 0.0, "weight_photo": 0.0}, {"clip": 0.5}, {"threshold": 1.0},
    {"weight_photo": float("nan")}, {"occlusion": {"cell_px": 0.5}}, {"occlusion": {"tolerance_m": -1e-3}},
    {"weight_foto": 1.0}, {"occlusion": {"cell": 2.0}},
])
def test_bad_settings_are_refused(values):
    with pytest.raises(ValueError, match=r"FusionConfig|Occlusion"):
        FusionConfig.from_dict(values)


def test_settings_round_trip_through_a_dict():
    config = FusionConfig(weight_photo=2.0, occlusion=Occlusion(cell_px=3.0))
    assert FusionConfig.from_dict(config.to_dict()) == config


def test_samples_outside_the_map_are_refused():
    with pytest.raises(ValueError, match="outside"):
        sample_photo_probability(np.zeros((10, 10)), np.array([[12.0, 3.0]]), np.array([True]))
    with pytest.raises(ValueError, match="photo_prob"):
        fuse_wound_probability(np.array([0.5]), np.array([1.5]))


# ------------------------------------------------------------------------------------------------ (e) measuring


def test_the_labelled_scan_measures_like_the_truth(phantom):
    scan = phantom.scan
    truth_points = scan.label.astype(float)  # a network that is right, and a photo that agrees
    tissue = np.eye(5)[np.where(scan.label == 1, 1, 0)]
    fused = fuse_segmentation(scan, truth_points, tissue, truth_map(scan, phantom.camera), phantom.camera)
    np.testing.assert_array_equal(fused.label, scan.label)

    labelled = labelled_scan(replace(scan, label=None, tissue=None), fused)
    assert labelled.label is not fused.label and labelled.points is not scan.points  # a copy, not a view
    report = measure(labelled)
    assert report["area_cm2"] == pytest.approx(phantom.truth["area_cm2"], rel=0.05)  # seen: 5.49 vs 5.50
    assert report["tissue"]["granulation"] == pytest.approx(1.0, abs=0.02)


def test_labelled_scan_refuses_a_fusion_of_another_scan():
    fused = fuse_segmentation(Scan(np.zeros((3, 3))), np.full(3, 0.6), None, None, None)
    with pytest.raises(ValueError, match="3 labels"):
        labelled_scan(Scan(np.zeros((4, 3))), fused)
