"""Corners of an outline that the skin-density kernel and the outline smoothing rounded off, restored.

The outline is the 0.5-contour of a kernel density a point spacing wide, then smoothed along its length, so
a sharp corner comes out cut: the tip retreats about a spacing, and a chord or width that ends there reads
low. Beside the rounded tip the edges are still where the data put them, so where two straight stretches
of outline meet at an angle the corner is where their lines cross. Only the rounded zone is bridged, and
only when both stretches are straight: a smoothly curved outline (a round wound's end, a tight bend) turns
all along, and is left as it is.
"""

from __future__ import annotations

import numpy as np

ZONE = 4  # outline vertices on each side of a tip that the kernel and the 5-vertex smoothing round off
FLANK = 6  # outline vertices beyond the zone, on each side, that a straight edge is fitted to
MIN_CANDIDATE = np.radians(30.0)  # least turn across the zone at a vertex worth testing
MIN_TURN = np.radians(60.0)  # least turn between the two edges: an interior angle of 120 degrees or less
CURVE = 1.2  # most the turn between the edges' outer halves may exceed that between their inner halves
SAG = 0.15  # most rms distance of an edge's vertices from its line, in vertex spacings (wiggles, not a bend)
REACH = 5.0  # most vertex spacings between the rounded tip and the corner that replaces it


def restored_corners(contour: np.ndarray) -> np.ndarray:
    """Corner points (K, 2) of a closed (u, v) contour whose rounded tips the data's straight edges restore."""
    if len(contour) < 4 * (ZONE + FLANK) or not np.allclose(contour[0], contour[-1]):
        return np.zeros((0, 2))
    ring = contour[:-1]
    arc = _ArcLength(ring)
    turn = _turn_across(ring, arc)
    found, used = [], np.zeros(len(ring), bool)
    for tip in np.argsort(-turn):
        if turn[tip] < MIN_CANDIDATE:
            break
        zone = arc.span(tip, ZONE)
        if used[zone].any():
            continue
        corner = _corner_at(ring, arc, tip)
        if corner is not None:
            found.append(corner)
            used[zone] = True
    return np.array(found).reshape(-1, 2)


class _ArcLength:
    """Vertex lookup by arc length along a closed ring, in units of its median vertex spacing."""

    def __init__(self, ring: np.ndarray):
        segments = np.linalg.norm(np.roll(ring, -1, axis=0) - ring, axis=1)
        self.unit = float(np.median(segments))
        self.position = np.concatenate([[0.0], np.cumsum(segments)[:-1]])
        self.total = float(segments.sum())

    def at(self, tip: int, offsets: np.ndarray) -> np.ndarray:
        """Indices of the vertices `offsets` (vertex spacings, signed) along the ring from `tip`."""
        wanted = (self.position[tip] + np.asarray(offsets) * self.unit) % self.total
        return np.searchsorted(self.position, wanted) % len(self.position)

    def span(self, tip: int, half: float) -> np.ndarray:
        """Indices of the vertices within `half` vertex spacings of `tip`, in order."""
        start, stop = self.at(tip, [-half, half])
        return np.arange(start, start + (stop - start) % len(self.position) + 1) % len(self.position)


def _turn_across(ring: np.ndarray, arc: _ArcLength) -> np.ndarray:
    """Angle (radians) between the chords from ZONE vertices before each vertex to it and from it onwards."""
    index = np.arange(len(ring))
    before = ring - ring[arc.at(index, -ZONE)]
    after = ring[arc.at(index, ZONE)] - ring
    change = np.arctan2(after[:, 1], after[:, 0]) - np.arctan2(before[:, 1], before[:, 0])
    return np.abs((change + np.pi) % (2 * np.pi) - np.pi)


def _corner_at(ring: np.ndarray, arc: _ArcLength, tip: int) -> np.ndarray | None:
    """Where the straight edges on either side of the rounded `tip` cross, or None if this is no corner."""
    before = ring[arc.at(tip, np.arange(-ZONE - FLANK, -ZONE + 1))]
    after = ring[arc.at(tip, np.arange(ZONE, ZONE + FLANK + 1))]
    half = len(before) // 2
    # a corner turns as much between the edges' inner halves as between their outer halves; a curve turns
    # more across the wider span
    inner = _angle(_line(before[half:])[1], _line(after[:half])[1])
    outer = _angle(_line(before[:half])[1], _line(after[half:])[1])
    if inner < MIN_TURN or outer > CURVE * inner:
        return None
    (c1, d1, r1), (c2, d2, r2) = _line(before), _line(after)
    if _angle(d1, d2) < MIN_TURN or max(np.sqrt(np.mean(r1**2)), np.sqrt(np.mean(r2**2))) > SAG * arc.unit:
        return None
    s = np.linalg.solve(np.column_stack([d1, -d2]), c2 - c1)  # d1, d2 are at least MIN_TURN apart
    corner = c1 + s[0] * d1
    inward = before[-1] + after[0] - 2 * ring[tip]  # from the tip towards the chord that cuts it
    if np.linalg.norm(corner - ring[tip]) > REACH * arc.unit or (corner - ring[tip]) @ inward > 0:
        return None
    return corner


def _line(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre, unit direction (first point to last) and signed residuals of the line fitted to `points`."""
    centre = points.mean(axis=0)
    _, _, axes = np.linalg.svd(points - centre, full_matrices=False)
    direction = axes[0] if (points[-1] - points[0]) @ axes[0] >= 0 else -axes[0]
    return centre, direction, (points - centre) @ axes[1]


def _angle(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.arccos(np.clip(a @ b, -1.0, 1.0)))
