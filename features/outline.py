"""The wound outline: contours of the wound-fraction field, lifted onto the skin surface."""

from __future__ import annotations

import contextlib

import numpy as np
from scipy.spatial import ConvexHull, QhullError

from features.corners import restored_corners
from features.fields import Grid
from features.surface import SkinSurface

CHORD_WINDOW = 9  # outline vertices (about grid steps) averaged before the longest chord is taken
MAX_DRAWN_VERTICES = 200  # the outline reported for drawing: enough for a smooth curve on a photo


def outline_contours(field: np.ndarray, grid: Grid, min_area: float) -> list[np.ndarray]:
    """Closed 0.5-contours (each (K, 2) in u, v) around wound regions larger than `min_area` (m²)."""
    from skimage.measure import find_contours

    # pad with skin so a wound cut by the grid edge still yields closed outlines
    padded = np.pad(field, 1, constant_values=0.0)
    contours = []
    for c in find_contours(padded, 0.5):
        uv = grid.to_uv(c - 1.0)
        if _planar_area(uv) >= min_area:
            contours.append(smooth_closed(uv, window=5))
    return contours


def _planar_area(uv: np.ndarray) -> float:
    x, y = uv[:, 0], uv[:, 1]
    return 0.5 * float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def smooth_closed(uv: np.ndarray, window: int) -> np.ndarray:
    """Circular moving average: removes the marching-squares staircase without shrinking the curve much."""
    if len(uv) <= window or not np.allclose(uv[0], uv[-1]):
        return uv
    ring = uv[:-1]
    kernel = np.ones(window) / window
    half = window // 2
    wrapped = np.concatenate([ring[-half:], ring, ring[:half]])
    smooth = np.column_stack([np.convolve(wrapped[:, j], kernel, mode="valid") for j in range(2)])
    return np.vstack([smooth, smooth[:1]])


def lift(surface: SkinSurface, uv: np.ndarray) -> np.ndarray:
    """Local 3D points (u, v, f(u, v)) on the skin surface, (K, 3)."""
    return np.column_stack([uv, surface.height(uv)])


def world_outline(surface: SkinSurface, contours: list[np.ndarray],
                  max_vertices: int = MAX_DRAWN_VERTICES) -> list[list[float]]:
    """The largest region's outline on the skin as a closed polyline of scan coordinates [x, y, z] in metres.

    Evenly thinned to at most `max_vertices` vertices (the last repeats the first), for drawing the outline over
    the photo or the scan; the measurements use the full contours.
    """
    uv = max(contours, key=_planar_area)
    ring = uv[:-1] if len(uv) > 1 and np.allclose(uv[0], uv[-1]) else uv
    ring = ring[:: -(-len(ring) // max(max_vertices - 1, 1))]  # ceil division: at most max_vertices - 1 kept
    return surface.to_world(lift(surface, np.vstack([ring, ring[:1]]))).tolist()


def perimeter(surface: SkinSurface, contours: list[np.ndarray]) -> float:
    """Total length (metres) of the outlines on the skin surface."""
    total = 0.0
    for uv in contours:
        total += float(np.linalg.norm(np.diff(lift(surface, uv), axis=0), axis=1).sum())
    return total


def tangent_coordinates(surface: SkinSurface, pts: np.ndarray, centre_uv: np.ndarray) -> np.ndarray:
    """(K, 2) coordinates of local 3D points in the skin's tangent plane at the centre."""
    normal = surface.normal_local(centre_uv[None, :])[0]
    e1 = np.cross(normal, [0.0, 1.0, 0.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(normal, e1)
    return np.column_stack([pts @ e1, pts @ e2])


def chord_points(surface: SkinSurface, contours: list[np.ndarray], centre_uv: np.ndarray,
                 corners: bool = True) -> np.ndarray:
    """(K, 2) tangent-plane points whose hull the longest chord and the width are read from.

    The longest chord picks the outline's outermost wiggles, so it is taken on a smoother outline; that
    smoothing (and the kernel before it) rounds sharp corners, which are put back from the edges beside them
    unless `corners` is False.
    """
    smooth = [smooth_closed(c, window=CHORD_WINDOW) for c in contours]
    restored = [restored_corners(c) for c in contours] if corners else []
    pts = lift(surface, np.vstack(smooth + restored))
    flat = tangent_coordinates(surface, pts, centre_uv)
    with contextlib.suppress(QhullError):  # collinear outlines have no hull; use every point
        flat = flat[ConvexHull(flat).vertices]
    return flat


def length_width(surface: SkinSurface, contours: list[np.ndarray], centre_uv: np.ndarray,
                 corners: bool = True) -> tuple[float, float]:
    """Longest chord of the outline in the tangent plane at the centre, and the extent across it."""
    flat = chord_points(surface, contours, centre_uv, corners)
    length, across = longest_chord(flat)
    return length, float(np.ptp(flat @ across))


def longest_chord(flat: np.ndarray) -> tuple[float, np.ndarray]:
    """Length of the longest chord between (K, 2) points, and the unit direction across it."""
    gaps = flat[:, None, :] - flat[None, :, :]
    dist = np.linalg.norm(gaps, axis=-1)
    i, j = np.unravel_index(np.argmax(dist), dist.shape)
    direction = gaps[i, j] / max(dist[i, j], 1e-12)
    return float(dist[i, j]), np.array([-direction[1], direction[0]])
