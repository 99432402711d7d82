"""Outline details the acceptance tests only see in aggregate: restored corners and dropouts beside the wound."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from skimage.measure import find_contours

from features.corners import restored_corners
from features.fields import Grid, wound_vote
from features.opening import opening_field
from features.outline import smooth_closed

STEP = 1.0  # grid step of the synthetic fields below (arbitrary units)


def _contour(signed_distance: np.ndarray, blur: float) -> np.ndarray:
    """The 0.5-contour (closed, grid units) of a shape's blurred indicator, smoothed as the engine smooths it.

    The indicator ramps linearly across the outline over two cells, so the outline is exact to sub-cell
    accuracy before the blur.
    """
    field = ndimage.gaussian_filter(np.clip(0.5 + signed_distance / 2, 0.0, 1.0), blur)
    (contour,) = [c for c in find_contours(field, 0.5) if len(c) > 20]
    return smooth_closed(contour, window=5)


def _square(side: float, turn_deg: float, n: int = 120) -> tuple[np.ndarray, np.ndarray]:
    """Signed distance (positive inside) to a square of `side` turned by `turn_deg` mid-grid, and its corners."""
    angle = np.radians(turn_deg)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    local = (np.stack([i.ravel(), j.ravel()], axis=1) - n / 2) @ rot
    outside = np.maximum(np.abs(local) - side / 2, 0.0)
    depth = side / 2 - np.abs(local).max(axis=1)  # distance to the nearest side, for points inside
    distance = np.where(outside.any(axis=1), -np.linalg.norm(outside, axis=1), depth)
    corners = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]]) * side / 2 @ rot.T + n / 2
    return distance.reshape(n, n), corners


def _disc(radius: float, n: int = 120) -> np.ndarray:
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    return radius - np.hypot(i - n / 2, j - n / 2)


@pytest.mark.parametrize("turn_deg", [0.0, 17.0, 45.0])
def test_blurred_square_gets_its_corners_back(turn_deg):
    inside, corners = _square(60.0, turn_deg)
    contour = _contour(inside, blur=1.5)
    rounded = np.array([np.min(np.linalg.norm(contour - c, axis=1)) for c in corners])
    found = restored_corners(contour)
    assert len(found) == 4
    restored = np.array([np.min(np.linalg.norm(found - c, axis=1)) for c in corners])
    assert rounded.min() > 1.0  # the blur and the smoothing cut every corner by more than a grid step
    assert restored.max() < 0.5


@pytest.mark.parametrize("radius", [15.0, 40.0])
def test_round_outlines_have_no_corners(radius):
    contour = _contour(_disc(radius), blur=1.5)
    rng = np.random.default_rng(0)
    wiggled = contour + np.vstack([rng.normal(0, 0.15, (len(contour) - 1, 2)), np.zeros((1, 2))])
    wiggled[-1] = wiggled[0]
    assert len(restored_corners(contour)) == 0
    assert len(restored_corners(wiggled)) == 0


def test_an_elongated_end_is_no_corner():
    # a 4:1 ellipse's end curves with a radius of 4 cells, a few blur widths: still resolved as a curve
    # (at 5:1 and a radius of 2.4 cells it is not, and reads as a corner)
    i, j = np.meshgrid(np.arange(160), np.arange(160), indexing="ij")
    scale = np.hypot((i - 80) / 60, (j - 80) / 15)  # 1 on the ellipse
    contour = _contour((1 - scale) * 15, blur=1.5)
    assert len(restored_corners(contour)) == 0


def _flat_scan(spacing: float, radius: float, dropout: tuple[float, float, float] | None, seed: int = 0):
    """(u, v) points of flat skin on a jittered grid around a round wound of `radius`, optionally with a
    round dropout (u, v, r) of every point; labels 1 inside the wound."""
    rng = np.random.default_rng(seed)
    n = int(60 / spacing)
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    uv = (np.stack([i.ravel(), j.ravel()], axis=1) + 0.5 + rng.uniform(-0.35, 0.35, (n * n, 2))) * spacing - 30
    if dropout is not None:
        uv = uv[np.hypot(uv[:, 0] - dropout[0], uv[:, 1] - dropout[1]) > dropout[2]]
    return uv, np.hypot(uv[:, 0], uv[:, 1]) < radius


class _FlatSkin:
    """The plane w = 0: what opening_field asks of the skin surface."""

    def gradient(self, uv: np.ndarray) -> np.ndarray:
        return np.zeros((len(uv), 2))


def _opening_area(uv: np.ndarray, wound: np.ndarray, spacing: float) -> float:
    grid = Grid.around(uv[wound], margin=8 * spacing, step=spacing)
    vote = wound_vote(grid, uv, wound)
    field = opening_field(grid, uv, wound, _FlatSkin(), vote)
    return float((field >= 0.5).sum() * grid.step**2)


def test_a_dropout_in_the_skin_beside_the_wound_stays_skin():
    spacing, radius, hole = 1.0, 12.0, 3.0
    added = []
    for seed in range(5):  # the grid's jitter moves the outline by a node here and there: average it out
        clean = _opening_area(*_flat_scan(spacing, radius, None, seed), spacing)
        # a hole in the skin's data, its edge one spacing from the wound's
        holed = _opening_area(*_flat_scan(spacing, radius, (radius + 1.0 + hole, 0.0, hole), seed), spacing)
        assert clean == pytest.approx(np.pi * radius**2, rel=0.03)
        added.append(holed - clean)
    # read as skinless, the hole would join the opening as a bump of a third of its area or more
    assert np.mean(added) < 0.2 * np.pi * hole**2
