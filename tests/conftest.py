"""Shared fixtures: a small labelled scan made in memory (a bowl in flat skin, random pose)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from features.io import Scan


def bowl_scan(seed: int = 0, radius: float = 0.010, depth: float = 0.004, spacing: float = 6e-4,
              noise: float = 3e-4, tissue: bool = False) -> Scan:
    """Flat skin with a spherical-cap cavity, jittered grid sampling, Gaussian range noise, random pose."""
    rng = np.random.default_rng(seed)
    half = radius + 0.02
    g = np.arange(-half, half, spacing)
    u, v = (a.ravel() + rng.uniform(-spacing / 3, spacing / 3, a.size) for a in np.meshgrid(g, g))
    r = np.hypot(u, v)
    sphere = (radius**2 + depth**2) / (2 * depth)
    inside = r < radius
    w = np.where(inside, (sphere - depth) - np.sqrt(np.maximum(sphere**2 - r**2, 0.0)), 0.0)
    points = np.column_stack([u, v, w + rng.normal(0, noise, u.size)])
    points = points @ Rotation.random(random_state=seed).as_matrix().T + rng.uniform(-0.3, 0.3, 3)
    colors = np.where(inside[:, None], [170, 40, 40], [200, 160, 140]).astype(np.uint8)
    classes = np.where(inside, np.where(u > 0, 1, 2), 0).astype(np.uint8) if tissue else None
    return Scan(points, colors=colors, label=inside.astype(np.uint8), tissue=classes)


@pytest.fixture
def bowl() -> Scan:
    return bowl_scan()
