"""Segmentation refinement by geometry: the fused wound grows into the points beside it that lie clearly
below the intact skin reconstructed around it.

A segmentation that stops short of the wound's edge leaves wound points (a bowl's slope, a crater's wall)
in the periwound ring the engine fits the skin to; the skin then sags into the wound, and depth and volume
read low. A point more than a few noise widths below a skin fitted to that ring is not intact skin, whatever
the networks said; if it touches the wound it joins it. The skin is refitted on the ring around the grown
wound and the growth repeated, a few passes at most. Edges shallower than the noise stay as labelled: only
the colour can place them, and the networks have had their say on colour.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from features.preprocess import point_spacing
from features.surface import fit_skin, periwound_ring


@dataclass(frozen=True)
class Growth:
    """noise_widths: how far below the skin, in the ring fit's robust RMS, a point is no longer skin;
    reach: how close to the wound (in point spacings) a point must lie to join it in one step."""

    noise_widths: float = 2.0
    passes: int = 3
    reach: float = 1.5
    enabled: bool = True


def grow_wound(points: np.ndarray, wound: np.ndarray, growth: Growth | None = None) -> np.ndarray:
    """The wound mask (N,) grown into adjacent points below the reconstructed skin; `wound` is not changed."""
    growth = growth or Growth()
    wound = np.asarray(wound, dtype=bool)
    if not growth.enabled or wound.sum() < 30 or wound.all():
        return wound.copy()
    spacing = point_spacing(points)
    for _ in range(growth.passes):
        grown = _grow_once(points, wound, spacing, growth)
        if grown.sum() == wound.sum():
            break
        wound = grown
    return wound.copy()


def _grow_once(points: np.ndarray, wound: np.ndarray, spacing: float, growth: Growth) -> np.ndarray:
    ring = periwound_ring(points[wound], points[~wound], spacing)
    if ring is None:
        return wound
    skin = fit_skin(ring, points[wound])
    local = skin.to_local(points)
    below = skin.height(local[:, :2]) - local[:, 2] > growth.noise_widths * skin.rms
    return _flood(points, wound, below & ~wound, growth.reach * spacing)


def _flood(points: np.ndarray, seed: np.ndarray, candidates: np.ndarray, reach: float) -> np.ndarray:
    """`seed` plus the candidates connected to it through candidates no further than `reach` apart."""
    grown = seed.copy()
    pool = np.flatnonzero(candidates)
    if len(pool) == 0:
        return grown
    tree = cKDTree(points[pool])
    front = points[seed]
    while len(front):
        hits = tree.query_ball_point(front, reach, workers=-1)
        joined = np.unique(np.concatenate([np.asarray(h, dtype=np.int64) for h in hits]))
        joined = pool[joined]
        joined = joined[~grown[joined]]
        grown[joined] = True
        front = points[joined]
    return grown
