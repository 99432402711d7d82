"""Preprocessing shortcuts hold to the definitions they speed up."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from features.io import Scan
from features.preprocess import crop_around, point_spacing, voxel_for, voxel_reduce


def _sheet(n_side: int, seed: int) -> Scan:
    """A randomly posed, gently curved sheet with a wound patch in one corner."""
    rng = np.random.default_rng(seed)
    u, v = (a.ravel() for a in np.meshgrid(*[np.linspace(-0.05, 0.05, n_side)] * 2))
    points = np.column_stack([u, v, 4 * (u**2 + v**2) + rng.normal(0, 3e-4, u.size)])
    points = points @ Rotation.random(random_state=seed).as_matrix().T
    label = (np.hypot(u - 0.02, v - 0.01) < 0.012).astype(np.uint8)
    return Scan(points, label=label)


@pytest.mark.parametrize(("seed", "margin"), [(1, 0.03), (2, 0.008), (3, 0.2)])
def test_crop_keeps_exactly_the_points_within_the_margin_of_the_wound_sample(seed, margin):
    scan = _sheet(400, seed)
    wound = scan.points[scan.label == 1]
    sample = wound[:: max(1, len(wound) // 4000)]  # crop_around's own subsample
    expected = cKDTree(sample).query(scan.points)[0] <= margin
    cropped = crop_around(scan, scan.label == 1, margin)
    assert len(cropped) == expected.sum()
    np.testing.assert_array_equal(cropped.points, scan.points[expected])


def test_crop_of_labels_scattered_over_a_large_cloud_stays_exact():
    rng = np.random.default_rng(4)
    points = rng.uniform(-1, 1, (100_000, 3))
    label = np.zeros(len(points), np.uint8)
    label[:40] = 1
    cropped = crop_around(Scan(points, label=label), label == 1, 0.03)
    assert len(cropped) == (cKDTree(points[:40]).query(points)[0] <= 0.03).sum()


@pytest.mark.parametrize("seed", [5, 6])
def test_voxel_edge_reaches_the_target_count_on_a_tilted_sheet(seed):
    scan = _sheet(700, seed)  # 490k points
    target = 100_000
    reduced = voxel_reduce(scan, voxel_for(scan.points, target, point_spacing(scan.points)))
    assert 0.75 * target <= len(reduced) <= 1.1 * target
