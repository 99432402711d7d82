"""Geometric growth of a segmentation that stops short of the wound's edge (models.wound_growth)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from features.measure import measure
from features.phantoms import PhantomConfig, make_phantom
from models.fusion_segmentation import fuse_segmentation
from models.wound_growth import Growth, grow_wound


@pytest.fixture(scope="module")
def bowl():
    """A procedural bowl 9 mm deep on a limb (seed 5, index 1; ~2,700 wound points), its labels eroded by 2 mm."""
    phantom = make_phantom(1, PhantomConfig(texture="procedural", photos_dir=None), seed=5)
    truth = phantom.scan.label == 1
    # what a network that misses the slope does: wound points further than 2 mm from any skin point
    dist, _ = cKDTree(phantom.scan.points[~truth]).query(phantom.scan.points[truth])
    short = np.zeros_like(truth)
    short[np.flatnonzero(truth)[dist > 2e-3]] = True
    return phantom, truth, short


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_growth_recovers_the_slope_without_leaking_into_skin(bowl):
    phantom, truth, short = bowl
    grown = grow_wound(phantom.scan.points, short)
    assert iou(short, truth) < 0.8
    assert iou(grown, truth) > 0.85
    assert (grown & ~truth).sum() < 0.03 * truth.sum()  # skin that joined: the outline's edge points at most


def test_growth_brings_the_area_back_and_keeps_the_volume(bowl):
    phantom, truth, short = bowl
    errors = {}
    for name, labels in (("truth", truth), ("short", short), ("grown", grow_wound(phantom.scan.points, short))):
        scan = phantom.scan.subset(np.arange(len(phantom.scan)))
        scan.label = labels.astype(np.uint8)
        report = measure(scan)
        errors[name] = {k: abs(report[k] / phantom.truth[k] - 1) for k in ("area_cm2", "volume_cm3")}
    # the slope that joined brings the outline out; what stays short is the rim shallower than the noise
    assert errors["grown"]["area_cm2"] < 0.5 * errors["short"]["area_cm2"], errors
    assert errors["grown"]["volume_cm3"] < errors["truth"]["volume_cm3"] + 0.02, errors


def test_flat_skin_does_not_grow():
    rng = np.random.default_rng(0)
    uv = rng.uniform(-0.03, 0.03, (20000, 2))
    points = np.column_stack([uv, rng.normal(0, 3e-4, len(uv))])  # flat skin, 0.3 mm noise, no depression
    wound = np.linalg.norm(uv, axis=1) < 0.008
    grown = grow_wound(points, wound)
    assert grown.sum() <= wound.sum() * 1.02  # a few noise outliers touching the edge at most


def test_disabled_growth_and_fusion_without_it_keep_the_labels(bowl):
    phantom, _, short = bowl
    assert (grow_wound(phantom.scan.points, short, Growth(enabled=False)) == short).all()
    p = np.where(short, 0.9, 0.1)
    plain = fuse_segmentation(phantom.scan, p, None, None, None)
    grown = fuse_segmentation(phantom.scan, p, None, None, None, growth=Growth())
    assert (plain.label == short).all()
    assert grown.label.sum() > plain.label.sum()
