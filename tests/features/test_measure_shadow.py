"""A rim's shadow: the bed beside one side of the outline is hidden from an oblique camera.

The skin there is seen to its edge, so the outline must stay where the skin stops, and the hidden bed is
filled between what was seen and the outline instead of being extrapolated or cut off.
"""

from __future__ import annotations

import analytic
import numpy as np
import pytest

from features.measure import measure

A_MM, H_MM = 12.0, 5.0  # opening radius and depth
SHAPES = {"cap": (analytic.cap_cloud, analytic.cap_truth), "crater": (analytic.crater_cloud, analytic.crater_truth)}


def _shadowed(shape: str, band_mm: float, seed: int) -> tuple[dict, dict]:
    """The shape's truth, and its measured scan with the bed points within band_mm of one side of the
    outline removed."""
    cloud_of, truth_of = SHAPES[shape]
    sampling = analytic.Sampling(spacing_mm=0.5, noise_mm=0.3, seed=seed)
    rng = np.random.default_rng([seed, 0])
    cloud = cloud_of(A_MM, H_MM, sampling.spacing_mm, rng)
    hidden = (cloud.label == 1) & (cloud.points[:, 0] > A_MM - band_mm)
    cloud = analytic.Cloud(cloud.points[~hidden], cloud.normals[~hidden], cloud.label[~hidden])
    scan = analytic.finish(cloud, sampling, rng, keep_clear=np.array([0.0, 0.0, -H_MM]))
    return truth_of(A_MM, H_MM), measure(scan)


@pytest.fixture(scope="module")
def shadowed() -> list[tuple[dict, dict]]:
    # a crater's bed is as deep right up to its wall, the hardest case for the fill
    return [_shadowed(shape, band_mm=3.0, seed=seed) for shape in SHAPES for seed in (11, 12, 13)]


def test_the_outline_stays_where_the_skin_stops(shadowed):
    # splitting the 3 mm gap between skin and wound points would lose about a tenth of the area
    for truth, report in shadowed:
        assert report["area_cm2"] == pytest.approx(truth["area_cm2"], rel=0.02)


def test_the_hidden_bed_is_filled_not_extrapolated(shadowed):
    for truth, report in shadowed:
        assert report["volume_cm3"] == pytest.approx(truth["volume_cm3"], rel=0.05)
        assert 0.02 < report["quality"]["unseen_share"] < 0.2  # the 3 mm band, about a twentieth of the opening
        assert any("holes in the bed" in w for w in report["quality"]["warnings"])


def test_intervals_hold_the_truth_beside_a_shadow(shadowed):
    for truth, report in shadowed:
        for name in ("area_cm2", "volume_cm3", "max_depth_mm"):
            low, high = report["uncertainty"][name]
            assert low <= truth[name] <= high, (name, truth[name], low, high)
