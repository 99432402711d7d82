"""Per-point network inputs: columns, orientation towards the device, local geometry of a known bowl."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from features.io import Scan
from features.phantoms import PhantomConfig, make_phantom
from features.phantoms.sensor import camera_centre
from features.point_features import (
    feature_names,
    local_geometry,
    orient_normals,
    point_features,
    scan_inputs,
    sensor_direction,
    voxel_cells,
)
from tests.conftest import bowl_scan


def bowl_up(seed: int = 0) -> np.ndarray:
    """The outward skin normal of `bowl_scan(seed)`: its local +w axis after the random pose."""
    return Rotation.random(random_state=seed).as_matrix() @ np.array([0.0, 0.0, 1.0])


def test_columns_match_names_and_ranges(bowl: Scan) -> None:
    features = point_features(bowl, radii=(0.003, 0.008), towards=bowl_up())
    names = feature_names((0.003, 0.008))
    assert features.shape == (len(bowl), len(names)) == (len(bowl), 13) and features.dtype == np.float32
    assert names[-4:] == ("height_3mm", "variation_3mm", "height_8mm", "variation_8mm")
    assert np.isfinite(features).all()
    np.testing.assert_allclose(features[:, :3].mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(features[:, 3:6], bowl.colors / 255.0, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(features[:, 6:9], axis=1), 1, atol=1e-5)
    assert (features[:, 6:9] @ bowl_up() > 0).all()


def test_scan_without_colour_is_grey_and_given_normals_are_used(bowl: Scan) -> None:
    normals = np.tile(-bowl_up(), (len(bowl), 1)).astype(np.float32)
    features = point_features(Scan(bowl.points, normals=normals), radii=(0.004,), towards=bowl_up())
    assert (features[:, 3:6] == 0.5).all()
    np.testing.assert_allclose(features[:, 6:9], np.tile(bowl_up(), (len(bowl), 1)), atol=1e-6)


def test_bowl_geometry_bed_below_rim_above_flat_skin() -> None:
    scan = bowl_scan(seed=1, radius=0.012, depth=0.005, noise=1e-4)
    up = bowl_up(1)
    normals = orient_normals(np.tile(up, (len(scan), 1)) + 0.01, up)
    height, variation = local_geometry(scan.points, normals, 0.008).T
    centre = scan.points[scan.label == 1].mean(axis=0)
    r = np.linalg.norm(scan.points - centre - np.outer((scan.points - centre) @ up, up), axis=1)
    bed, rim, skin = r < 0.006, np.abs(r - 0.012) < 0.002, r > 0.022
    assert np.median(height[bed]) < -0.1  # the bed lies below the plane of its neighbourhood
    assert np.abs(np.median(height[skin])) < 0.02
    assert np.median(variation[rim]) > 5 * np.median(variation[skin])


def test_voxel_cells_means() -> None:
    points = np.array([[0.1, 0.1, 0.1], [0.3, 0.3, 0.3], [1.2, 0.1, 0.1]])
    inverse, centres = voxel_cells(points, 1.0)
    assert inverse[0] == inverse[1] != inverse[2]
    np.testing.assert_allclose(centres[inverse[0]], [0.2, 0.2, 0.2])


@pytest.fixture(scope="module")
def phantoms() -> list:
    """Flat, limb and heel phantoms, procedural texture (the shapes cycle with the index)."""
    config = PhantomConfig(texture="procedural", photos_dir=None)
    return [make_phantom(i, config, seed=5) for i in range(3)]


def test_sensor_direction_faces_the_device(phantoms: list) -> None:
    for phantom in phantoms:
        points = phantom.scan.points
        device = camera_centre(phantom.camera)  # the photo is taken from the depth sensor's position
        to_device = device - points.mean(axis=0)
        direction = sensor_direction(points)
        assert direction @ to_device / np.linalg.norm(to_device) > 0.5, phantom.truth["generator"]["shape"]


def test_scan_inputs_reduce_and_orient(phantoms: list) -> None:
    phantom = phantoms[0]
    reduced, features = scan_inputs(phantom.scan, 0.002)
    assert len(reduced) < len(phantom.scan) and features.shape == (len(reduced), 13)
    facing = np.einsum("ij,ij->i", camera_centre(phantom.camera) - reduced.points, features[:, 6:9])
    assert (facing > 0).mean() > 0.95
    assert set(np.unique(reduced.label)) == {0, 1} and reduced.tissue is not None
