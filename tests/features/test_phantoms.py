"""Wound phantoms: exact truth against closed forms, determinism, and the scans they write."""

from __future__ import annotations

import json
from itertools import product
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.spatial import cKDTree

from features.io import read_camera, read_metadata, read_scan
from features.phantoms import PhantomConfig, make_phantom, write_phantoms
from features.phantoms.generate import plan
from features.phantoms.surfaces import Surface
from features.phantoms.truth import wound_truth
from features.phantoms.wounds import PROFILES, depth_profile, grid_around, outline_distance, ramp

FUSEG = Path("/work/shared/datasets/fuseg/train")
needs_photos = pytest.mark.skipif(not (FUSEG / "images").is_dir(), reason="FUSeg photos not on this machine")
TRUTH_KEYS = {"area_cm2", "volume_cm3", "max_depth_mm", "mean_depth_mm", "perimeter_cm", "length_cm", "width_cm",
              "surface_area_cm2", "tissue", "generator"}


def config(**kw) -> PhantomConfig:
    return PhantomConfig(photos_dir=str(FUSEG) if FUSEG.is_dir() else None, **kw)


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    """Phantoms 0 (photo, LiDAR) and 1 (procedural, LiDAR) written once for the file tests."""
    out = tmp_path_factory.mktemp("phantoms")
    write_phantoms(2, out, 7, config())
    return out


# ---------------------------------------------------------------------------------------------- truth


def spherical_cap(a: float, h: float):
    """Flat skin, circular opening of radius a, bed a spherical cap of depth h."""
    grid = grid_around(-a, a, -a, a)
    uu, vv = grid.mesh()
    rho = np.hypot(uu, vv)
    big = (a * a + h * h) / (2 * h)
    depth = np.where(rho < a, np.sqrt(np.maximum(big**2 - rho**2, 0.0)) - (big - h), 0.0)
    return grid, ramp(a - rho, grid.step), depth


def test_truth_of_a_spherical_cap_matches_closed_form():
    a, h = 0.012, 0.005
    grid, field, depth = spherical_cap(a, h)
    truth = wound_truth(Surface("flat"), grid, field, depth)
    volume = np.pi * h * (3 * a * a + h * h) / 6
    assert truth["volume_cm3"] == pytest.approx(volume * 1e6, rel=5e-3)
    assert truth["area_cm2"] == pytest.approx(np.pi * a * a * 1e4, rel=5e-3)
    assert truth["perimeter_cm"] == pytest.approx(2 * np.pi * a * 100, rel=5e-3)
    assert truth["max_depth_mm"] == pytest.approx(h * 1e3, rel=1e-3)
    assert truth["mean_depth_mm"] == pytest.approx(volume / (np.pi * a * a) * 1e3, rel=5e-3)
    assert truth["length_cm"] == pytest.approx(2 * a * 100, rel=5e-3)
    assert truth["width_cm"] == pytest.approx(2 * a * 100, rel=5e-3)
    assert truth["surface_area_cm2"] == pytest.approx(np.pi * (a * a + h * h) * 1e4, rel=5e-3)
    assert truth["tissue"] is None


def test_truth_area_of_a_band_on_a_cylinder():
    r, half_u, half_v = 0.04, 0.015, 0.01  # opening |u| <= half_u, |v| <= half_v on a limb of radius r
    grid = grid_around(-half_u, half_u, -half_v, half_v)
    uu, vv = grid.mesh()
    field = np.minimum(ramp(half_u - np.abs(uu), grid.step), ramp(half_v - np.abs(vv), grid.step))
    truth = wound_truth(Surface("limb", (r,)), grid, field, np.zeros_like(uu))
    arc = 2 * r * np.arcsin(half_u / r)
    assert truth["area_cm2"] == pytest.approx(arc * 2 * half_v * 1e4, rel=5e-3)
    assert truth["volume_cm3"] == pytest.approx(0.0, abs=1e-9)
    assert truth["surface_area_cm2"] == pytest.approx(truth["area_cm2"], rel=1e-3)


def test_truth_tissue_fractions_add_up():
    grid, field, depth = spherical_cap(0.01, 0.003)
    uu, _ = grid.mesh()
    tissue = np.where(field >= 0.5, np.where(uu < 0, 1, 2), 0).astype(np.uint8)
    fractions = wound_truth(Surface("flat"), grid, field, depth, tissue)["tissue"]
    assert sum(fractions.values()) == pytest.approx(1.0)
    assert fractions["granulation"] == pytest.approx(0.5, abs=0.01)
    assert fractions["slough"] == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("profile", PROFILES)
def test_depth_profiles_reach_their_depth_and_vanish_outside(profile):
    grid, field, _ = spherical_cap(0.01, 0.003)
    inside = field >= 0.5
    depth, _ = depth_profile(profile, outline_distance(inside, grid.step), 0.004, grid, np.random.default_rng(0))
    assert depth.max() == pytest.approx(0.004, rel=1e-6)
    assert np.all(depth[~inside] == 0) and np.all(depth >= 0)


# ---------------------------------------------------------------------------------------------- the set


def test_plan_covers_every_combination():
    cfg = PhantomConfig(texture="procedural")
    seen = {tuple(plan(i, cfg)[k] for k in ("shape", "sensor", "profile")) for i in range(48)}
    assert seen == set(product(cfg.shapes, cfg.sensors, PROFILES))


@needs_photos
def test_plan_alternates_textures_over_every_combination():
    cfg = config()
    assert len({tuple(plan(i, cfg).values()) for i in range(48)}) == 3 * 2 * 4 * 2
    assert [plan(i, cfg)["texture"] for i in range(4)] == ["photo", "procedural"] * 2


def test_mixed_texture_without_photos_is_procedural(tmp_path):
    cfg = PhantomConfig(photos_dir=str(tmp_path / "missing"))
    assert {plan(i, cfg)["texture"] for i in range(4)} == {"procedural"}


def test_config_from_params_section():
    section = {"seed": 3, "n": 2, "texture": "procedural", "photos_dir": "data/photos", "depth_mm": [1, 5],
               "noise_mm": [0.2, 0.4], "distance_mm": [200, 300], "sensors": ["lidar"], "shapes": ["heel"],
               "profiles": {"full": {"n": 300}}}
    cfg = PhantomConfig.from_params(section)
    assert cfg.depth_mm == (1.0, 5.0) and cfg.sensors == ("lidar",) and cfg.seed == 3
    with pytest.raises(ValueError, match="shapes"):
        PhantomConfig.from_params({**section, "shapes": ["torso"]})


def test_writing_a_phantom_twice_is_byte_identical(written, tmp_path):
    paths = write_phantoms(2, tmp_path, 7, config())
    assert [p.name for p in paths] == ["phantom_0000.ply", "phantom_0001.ply"]
    names = sorted(p.name for p in written.iterdir())
    assert names == sorted(p.name for p in tmp_path.iterdir()) and len(names) == 10
    for name in names:
        assert (written / name).read_bytes() == (tmp_path / name).read_bytes(), name


def test_phantom_regenerates_alone():
    first = make_phantom(1, config(), seed=7)
    again = make_phantom(1, config(), seed=7)
    assert np.array_equal(first.scan.points, again.scan.points)
    assert first.truth == again.truth


# ---------------------------------------------------------------------------------------------- scans


@pytest.mark.parametrize("index", [0, 1])
def test_written_files_read_back(written, index):
    stem = written / f"phantom_{index:04d}"
    scan = read_scan(stem.with_suffix(".ply"))
    truth = json.loads(stem.with_suffix(".truth.json").read_text())
    camera = read_camera(stem.with_suffix(".camera.json"))
    meta = read_metadata(stem.with_suffix(".meta.json"))
    assert set(truth) >= TRUTH_KEYS
    assert meta["patient_id"] == f"P{index:04d}" and meta["body_site"] and meta["device"]
    assert (camera.width, camera.height) == Image.open(stem.with_suffix(".png")).size == (512, 512)
    assert scan.label is not None and scan.colors is not None and scan.normals is None
    assert 100_000 <= len(scan) <= 350_000
    assert int(scan.label.sum()) == truth["generator"]["wound_points"] >= 100
    procedural = truth["generator"]["texture"] == "procedural"
    assert (scan.tissue is not None) == procedural == (truth["tissue"] is not None)


def test_scan_is_in_metres_with_valid_attributes(written):
    scan = read_scan(written / "phantom_0001.ply")
    assert np.ptp(scan.points, axis=0).max() < 1.5
    wound = scan.points[scan.label == 1]
    assert np.ptp(wound, axis=0).max() < 0.08
    assert set(np.unique(scan.label)) == {0, 1}
    assert scan.tissue.max() <= 4 and np.all(scan.tissue[scan.label == 0] == 0)
    assert np.all(scan.tissue[scan.label == 1] > 0)


def test_scan_has_noise_and_outliers(written):
    scan = read_scan(written / "phantom_0001.ply")
    tree = cKDTree(scan.points)
    pick = np.random.default_rng(0).choice(np.nonzero(scan.label == 0)[0], 400, replace=False)
    _, near = tree.query(scan.points[pick], k=12)
    residual = []
    for group in scan.points[near]:
        centred = group - group.mean(axis=0)
        residual.append(np.linalg.svd(centred, compute_uv=False)[-1] / np.sqrt(len(group)))
    assert np.median(residual) > 3e-5  # an exact surface would fit a local plane to a few microns
    gaps, _ = tree.query(scan.points, k=2)
    assert gaps[:, 1].max() > 0.01  # a stray return far from any surface


@needs_photos
def test_photo_camera_projects_wound_points_onto_the_mask(written):
    truth = json.loads((written / "phantom_0000.truth.json").read_text())
    assert truth["generator"]["texture"] == "photo"
    scan = read_scan(written / "phantom_0000.ply")
    camera = read_camera(written / "phantom_0000.camera.json")
    mask = np.asarray(Image.open(FUSEG / "labels" / f"{truth['generator']['photo_id']}.png")) > 127
    photo = np.asarray(Image.open(written / "phantom_0000.png"))
    source = np.asarray(Image.open(FUSEG / "images" / f"{truth['generator']['photo_id']}.jpg").convert("RGB"))
    assert np.array_equal(photo, source)
    pix, z = camera.project(scan.points[scan.label == 1])
    assert np.all(z > 0)
    x, y = np.clip(np.rint(pix).astype(int), 0, 511).T
    assert mask[y, x].mean() > 0.9
    pix, _ = camera.project(scan.points[scan.label == 0])
    x, y = np.clip(np.rint(pix).astype(int), 0, 511).T
    assert mask[y, x].mean() < 0.1
