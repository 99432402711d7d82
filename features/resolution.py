"""What the engine's resolution can hide: probes of the outline for the systematic terms of the intervals.

The outline is drawn from a kernel density one point spacing wide and then smoothed, so it cannot follow
detail finer than a few spacings: it rounds a rectangle's corners (the longest chord, the width and the
perimeter read low), while range noise makes it wiggle (the perimeter and the chord read high). Neither is
noise that averages out. Each probe measures, on the scan itself, how much a number moves when the outline
is smoothed once more, or how much of the outline runs beside a gap in the data; features.uncertainty
turns them into interval terms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import ConvexHull, QhullError, cKDTree

from features import outline
from features.surface import SkinSurface

EXTRA_WINDOW = 17  # outline vertices in the extra smoothing pass: about twice what the outline already had


@dataclass(frozen=True)
class OutlineProbe:
    """How firmly the outline, and the numbers read off it, are pinned down by the data (metres, m²)."""

    gap_area: float  # outline length times how far it runs from the nearest wound point beyond normal sampling
    length_shift: float  # drop of the longest chord when the outline is smoothed once more
    width_shift: float  # drop of the width across it
    width_spread: float  # range of the widths across chords that are nearly as long as the longest
    perimeter_shift: float  # drop of the perimeter when the outline is smoothed once more
    length_beyond: float = 0.0  # how far the wound-labelled points' longest chord exceeds the outline's
    width_beyond: float = 0.0  # how far their extent across the outline's longest chord exceeds the width


def probe_outline(surface: SkinSurface, contours: list[np.ndarray], centre_uv: np.ndarray, wound_uv: np.ndarray,
                  spacing: float) -> OutlineProbe:
    """Probe the outline `contours` (u, v) against the points labelled wound `wound_uv` (u, v).

    The outline may fall short of the wound points' own extent, or run beside a gap in them.
    """
    smoother = [outline.smooth_closed(c, window=EXTRA_WINDOW) for c in contours]
    # on the outline as drawn: the restored corners stand for what the smoothing rounds off, so they would
    # hide from this probe the very rounding it measures
    length, width = outline.length_width(surface, contours, centre_uv, corners=False)
    length2, width2 = outline.length_width(surface, smoother, centre_uv, corners=False)
    return OutlineProbe(
        gap_area=_gap_area(contours, wound_uv, spacing),
        length_shift=length - length2,
        width_shift=width - width2,
        width_spread=_width_spread(surface, contours, centre_uv, tolerance=spacing),
        perimeter_shift=outline.perimeter(surface, contours) - outline.perimeter(surface, smoother),
        **_labels_beyond(surface, contours, centre_uv, wound_uv),
    )


def _labels_beyond(surface: SkinSurface, contours: list[np.ndarray], centre_uv: np.ndarray,
                   wound_uv: np.ndarray) -> dict[str, float]:
    """How far the wound-labelled points reach past the longest chord and the width read off the outline.

    The outline is the 0.5-contour of a kernel density some spacings wide, then smoothed: a spike or a strip
    of wound narrower than that (a ragged edge, a thin lobe, a piece joined by a neck) leaves labelled points
    but no outline, and the chord or the width ending there reads short by up to what they reach beyond it.
    Points lie inside the true edge, so their own longest chord, and their extent across the outline's, are
    what the numbers cannot be less than (up to placement); the excess bounds that systematic error.
    """
    if len(wound_uv) < 3:
        return {}
    hull = outline.chord_points(surface, contours, centre_uv)
    length, across = outline.longest_chord(hull)
    pts = outline.tangent_coordinates(surface, outline.lift(surface, wound_uv), centre_uv)
    try:
        pts = pts[ConvexHull(pts).vertices]
    except QhullError:  # collinear labels: no hull, and too many points to compare pairwise
        return {}
    return {"length_beyond": max(outline.longest_chord(pts)[0] - length, 0.0),
            "width_beyond": max(float(np.ptp(pts @ across) - np.ptp(hull @ across)), 0.0)}


def _gap_area(contours: list[np.ndarray], wound_uv: np.ndarray, spacing: float) -> float:
    """Sum over the outline of segment length times its distance to the nearest wound point beyond a spacing.

    The outline is where the skin's points stop (features.opening). Beside a gap in the wound's points (the
    bed hidden behind a rim, a dropout) what lies beyond is unseen: all bed for a shadow, but a dropout
    across the edge may hide skin too, so the true edge is known only to about the gap's width there, and
    the bed in it only by interpolation.
    """
    tree = cKDTree(wound_uv)
    total = 0.0
    for c in contours:
        mid = (c[1:] + c[:-1]) / 2
        gap = tree.query(mid, workers=-1)[0]
        total += float((np.linalg.norm(np.diff(c, axis=0), axis=1) * np.maximum(gap - spacing, 0.0)).sum())
    return total


def _width_spread(surface: SkinSurface, contours: list[np.ndarray], centre_uv: np.ndarray,
                  tolerance: float) -> float:
    """Range of the widths measured across every chord within `tolerance` of the longest.

    On a near-round or near-square outline several chords are almost equally long, and which one wins is
    decided by noise; the width across it jumps with the choice, so the spread is part of its uncertainty.
    """
    flat = outline.chord_points(surface, contours, centre_uv)
    gaps = flat[:, None, :] - flat[None, :, :]
    dist = np.linalg.norm(gaps, axis=-1)
    i, j = np.nonzero(np.triu(dist >= dist.max() - tolerance, k=1))
    directions = gaps[i, j] / dist[i, j, None]
    across = flat @ np.column_stack([-directions[:, 1], directions[:, 0]]).T  # (K, candidates)
    widths = np.ptp(across, axis=0)
    return float(np.ptp(widths)) if len(widths) else 0.0
