"""The bed fit beside a vertical wall: points weighed as samples of a height field."""

from __future__ import annotations

import numpy as np

from features.fields import harmonic_fill, height_weights, local_fit

DEPTH, RADIUS, SPACING, NOISE = 8e-3, 10e-3, 0.6e-3, 0.4e-3


def _crater(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(u, v), height and a wall flag of points on a flat bed at -DEPTH and its vertical wall at RADIUS,
    sampled evenly by area, with range noise along each surface's normal."""
    rng = np.random.default_rng(seed)
    n = int(2 * RADIUS / SPACING)
    grid = (np.stack(np.meshgrid(np.arange(n), np.arange(n)), axis=-1).reshape(-1, 2) + 0.5) * SPACING - RADIUS
    bed = grid[np.hypot(grid[:, 0], grid[:, 1]) < RADIUS]
    around, down = np.meshgrid(np.arange(0, 2 * np.pi * RADIUS, SPACING), np.arange(0, DEPTH, SPACING))
    angle = around.ravel() / RADIUS
    radial = RADIUS + rng.normal(0, NOISE, angle.size)  # a vertical wall's noise is horizontal
    wall = np.column_stack([radial * np.cos(angle), radial * np.sin(angle)])
    uv = np.vstack([bed, wall])
    h = np.concatenate([-DEPTH + rng.normal(0, NOISE, len(bed)), -down.ravel()])
    return uv, h, np.arange(len(uv)) >= len(bed)


def test_wall_points_weigh_little_as_height_samples():
    uv, h, on_wall = _crater()
    weights = height_weights(uv, h)
    inner_bed = ~on_wall & (np.hypot(uv[:, 0], uv[:, 1]) < RADIUS - 3e-3)
    assert np.median(weights[inner_bed]) > 0.9
    assert np.median(weights[on_wall]) < 0.1


def test_the_bed_beside_a_wall_keeps_its_depth():
    uv, h, _ = _crater()
    # nodes on a ring a point spacing inside the wall, where the wall's points crowd the neighbourhoods
    angle = np.linspace(0, 2 * np.pi, 90, endpoint=False)
    ring = (RADIUS - SPACING) * np.column_stack([np.cos(angle), np.sin(angle)])
    plain, _ = local_fit(ring, uv, h, k=24, quadratic=True, noise=NOISE)
    weighed, _ = local_fit(ring, uv, h, k=24, quadratic=True, noise=NOISE, weights=height_weights(uv, h))
    assert np.median(-plain) < 0.8 * DEPTH  # the unweighted fit is dragged up by the wall
    assert abs(np.median(-weighed) - DEPTH) < 0.05 * DEPTH


def test_harmonic_fill_reproduces_a_harmonic_field_from_its_boundary():
    i, j = np.meshgrid(np.arange(30.0), np.arange(24.0), indexing="ij")
    field = 2 + 0.1 * i - 0.05 * j + 0.01 * i * j  # its five-point Laplacian is zero
    unknown = np.zeros(field.shape, bool)
    unknown[1:-1, 1:-1] = True
    filled = harmonic_fill(np.where(unknown, np.nan, field), ~unknown, unknown)
    assert np.allclose(filled, field, atol=1e-9)


def test_harmonic_fill_falls_to_zero_at_the_outline():
    # seen bed 6 mm deep on the left, hidden bed to its right, skin (neither) beyond: the fill ramps down
    depth = np.zeros((40, 9))
    known, unknown = np.zeros(depth.shape, bool), np.zeros(depth.shape, bool)
    known[:10], unknown[10:30] = True, True
    depth[:10] = 6e-3
    filled = harmonic_fill(depth, known, unknown)
    middle = filled[10:30, 4]
    assert np.all(np.diff(middle) < 0) and 0 < middle[-1] < middle[0] < 6e-3
    assert np.all(filled[30:] == 0)
