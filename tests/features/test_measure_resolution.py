"""The probes behind the intervals' systematic terms, on shapes whose answer is known without the engine."""

from __future__ import annotations

import numpy as np

from features.deepest import depth_at
from features.resolution import probe_outline
from features.surface import SkinSurface

FLAT = SkinSurface(np.zeros(3), np.eye(3), 1, 1.0, np.zeros(3), np.zeros((3, 3)), 0.0, 0.0)  # w = 0
SPACING = 0.5e-3


def _closed(points: np.ndarray) -> np.ndarray:
    return np.vstack([points, points[:1]])


def _circle(radius: float) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, 360, endpoint=False)
    return _closed(radius * np.column_stack([np.cos(t), np.sin(t)]))


def _square(half: float) -> np.ndarray:
    side = np.linspace(-half, half, 57, endpoint=False)
    edge = np.full_like(side, half)
    return _closed(np.vstack([np.column_stack([side, -edge]), np.column_stack([edge, side]),
                              np.column_stack([-side, edge]), np.column_stack([-edge, -side])]))


def _grid_points(half: float = 15e-3, spacing: float = SPACING) -> np.ndarray:
    g = np.arange(-half, half, spacing)
    u, v = np.meshgrid(g, g, indexing="ij")
    return np.column_stack([u.ravel(), v.ravel()])


def test_smoothing_moves_a_square_outline_far_more_than_a_circle():
    # equal areas: 20 mm square, circle of radius 20 / sqrt(pi) mm
    square = probe_outline(FLAT, [_square(10e-3)], np.zeros(2), _grid_points(), SPACING)
    circle = probe_outline(FLAT, [_circle(10e-3 / np.sqrt(np.pi) * 2)], np.zeros(2), _grid_points(), SPACING)
    assert square.length_shift > 5 * circle.length_shift > 0
    assert square.width_shift > 5 * circle.width_shift > 0
    assert square.perimeter_shift > 5 * circle.perimeter_shift > 0


def test_gap_area_grows_where_the_outline_runs_beside_a_dropout():
    points = _grid_points()
    points = points[np.linalg.norm(points, axis=1) < 11e-3]  # the wound's points fill the outline
    outline = [_circle(11e-3)]
    whole = probe_outline(FLAT, outline, np.zeros(2), points, SPACING).gap_area
    dropout = np.linalg.norm(points - [11e-3, 0.0], axis=1) > 2e-3  # a 4 mm hole on the outline
    holed = probe_outline(FLAT, outline, np.zeros(2), points[dropout], SPACING).gap_area
    assert holed > 3 * whole
    assert 2e-6 < holed < 8e-6  # about 4 mm of outline, up to 2 mm from the nearest point


def test_scale_shift_flags_a_flattened_cone_tip_but_not_a_paraboloid():
    rng = np.random.default_rng(7)
    spacing = 0.3e-3  # dense enough that the growing-neighbourhood rule goes past its smallest fit
    uv = _grid_points(12e-3, spacing)
    uv = uv + rng.uniform(-0.35, 0.35, uv.shape) * spacing
    r = np.linalg.norm(uv, axis=1)
    uv, r = uv[r < 10e-3], r[r < 10e-3]
    noise = 0.02e-3
    shifts = {}
    for name, depth in (("cone", 5e-3 * (1 - r / 10e-3)), ("paraboloid", 5e-3 * (1 - (r / 10e-3) ** 2))):
        estimate, _, shifts[name] = depth_at(np.zeros((1, 2)), uv, -depth + rng.normal(0, noise, len(r)), noise)
        if name == "cone":
            assert estimate < 5e-3 - 0.05e-3  # the quadric flattens the tip
    assert shifts["cone"] < 0  # the larger fit came out shallower than the smallest one
    assert abs(shifts["cone"]) > 10 * abs(shifts["paraboloid"])


def test_labels_beyond_the_outline_flag_a_spike_it_rounded_off():
    # wound points fill a 10 mm disc plus a thin spike 0.6 mm wide reaching 4 mm past it along u, which a
    # kernel a few spacings wide leaves out of the outline; the outline drawn is the disc's
    points = _grid_points()
    disc = np.linalg.norm(points, axis=1) < 10e-3
    spike = (np.abs(points[:, 1]) < 0.3e-3) & (points[:, 0] > 0) & (points[:, 0] < 14e-3)
    outline = [_circle(10e-3)]
    plain = probe_outline(FLAT, outline, np.zeros(2), points[disc], SPACING)
    spiked = probe_outline(FLAT, outline, np.zeros(2), points[disc | spike], SPACING)
    assert plain.length_beyond < 2 * SPACING and plain.width_beyond < 2 * SPACING
    assert 3.5e-3 < spiked.length_beyond < 4.5e-3  # the truth's chord would end on the spike's tip
