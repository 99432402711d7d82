"""The wound's maximum depth: the deepest spot of the bed, located and measured by cross-fitting.

Also reports how far the chosen local fit moved from the smallest one, extrapolated to a fit of no size,
which features.uncertainty counts as the bias the growing-neighbourhood rule may have let through.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from features.fields import Grid, local_fit, masked_smooth
from features.surface import SkinSurface

NEIGHBOURHOODS = (24, 48, 96, 192)  # wound points per local quadric, smallest first
ICI_THRESHOLD = 2.0  # standard errors: neighbourhoods whose estimates lie further apart disagree
LOCATE_STEP = 0.3e-3  # metres between the nodes the spot is sought on: a fifth of the 1 mm smoothing or less


@dataclass(frozen=True)
class Deepest:
    """Maximum depth along the skin normal (metres), its standard error, and the scale shift.

    scale_shift: how much the chosen neighbourhood's depth moved from the smallest one's, extrapolated to
    a neighbourhood of no size (averaged over the two cross-fits). A quadric flattens a cone's tip in
    proportion to the neighbourhood's radius, so the move from radius r1 to r2 extrapolates to a bias of
    move * r2 / (r2 - r1) at r2; a smooth bottom's bias grows faster than the radius, so this bounds it.
    Where a larger neighbourhood disagreed, the move to it bounds the chosen one's bias the same way; the
    larger bound is kept, and the halves' magnitudes are averaged (signed, they would cancel).
    """

    depth: float
    std: float
    scale_shift: float
    location_loss: float = 0.0  # how much shallower an uncertainly located spot may read (see _location_loss)


def max_depth(fine: Grid, mask: np.ndarray, w_uv: np.ndarray, w_rel: np.ndarray, noise: float, surface: SkinSurface,
              spacing: float) -> Deepest:
    """Deepest depth along the skin normal, by cross-fitting two halves of the wound points.

    One half locates the deepest spot on its smoothed depth map, among nodes that have wound points
    close by (a hole's interpolated depth is not a measurement); the other half, untouched by that
    choice, estimates the depth there. Locating and estimating with the same points would add the
    noise's extreme to the answer. Both ways round are averaged.
    """
    # the spot is sought on a lattice of the grid: the 1 mm smoothing needs no finer one
    stride = max(1, int(LOCATE_STEP / fine.step))
    lattice = Grid(fine.u0, fine.v0, fine.step * stride, -(-fine.nu // stride), -(-fine.nv // stride))
    on = mask[::stride, ::stride]
    at = lattice.nodes()[on.ravel()]
    seen, candidates = _candidates(lattice, on, at, w_uv, spacing)
    half = np.random.default_rng(0).random(len(w_uv)) < 0.5
    depths, stds, shifts, spots = [], [], [], []
    for locate in (half, ~half):
        spot = _deepest_spot(lattice, on, at, seen, candidates, w_uv[locate], w_rel[locate], noise)
        depth, std, shift = depth_at(spot, w_uv[~locate], w_rel[~locate], noise)
        jac = np.sqrt(1.0 + (surface.gradient(spot) ** 2).sum())
        depths.append(depth / jac)
        stds.append(std)
        shifts.append(abs(shift) / jac)  # a bound on a bias of either sign: the halves must not cancel
        spots.append(spot[0])
    return Deepest(float(np.mean(depths)), float(np.mean(stds)) / np.sqrt(2), float(np.mean(shifts)),
                   _location_loss(spots, w_uv, w_rel, noise))


def _location_loss(spots: list[np.ndarray], w_uv: np.ndarray, w_rel: np.ndarray, noise: float) -> float:
    """How much shallower than the deepest point a spot located that uncertainly may be.

    The halves locate their spots independently, so their distance apart is about sqrt(2) times either's
    error. Where the bed still deepens from one spot towards the other (the flanks of a cone's tip) each
    may read that slope times its error shallow; along a trough's floor or on a smooth bottom the bed
    does not deepen that way, and nothing is lost.
    """
    offset = spots[1] - spots[0]
    distance = float(np.linalg.norm(offset))
    if distance == 0.0:
        return 0.0
    _, slope = local_fit(np.array(spots), w_uv, w_rel, k=24, noise=noise)  # of the bed's height
    towards = offset / distance
    deepening = np.maximum(-slope @ towards * np.array([1.0, -1.0]), 0.0)  # each spot towards the other
    return float(deepening.mean()) * distance / np.sqrt(2)


def _candidates(lattice: Grid, on: np.ndarray, at: np.ndarray, w_uv: np.ndarray,
                spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Nodes with wound points close by (seen), and the seen nodes away from the outline (walls, where fits
    break down): the spot's candidates."""
    seen = cKDTree(w_uv).query(at, workers=-1)[0] <= 2 * spacing
    inner = ndimage.binary_erosion(on, iterations=max(1, round(max(1e-3, 3 * spacing) / lattice.step)))[on]
    candidates = seen & inner if (seen & inner).any() else seen.copy()
    if not candidates.any():
        seen[:], candidates[:] = True, True
    return seen, candidates


def _deepest_spot(lattice: Grid, on: np.ndarray, at: np.ndarray, seen: np.ndarray, candidates: np.ndarray,
                  uv: np.ndarray, rel: np.ndarray, noise: float) -> np.ndarray:
    """(1, 2) location of the deepest candidate on the ~1 mm smoothed depth map, refined between nodes.

    Only seen nodes are fitted and smoothed: a quadric extrapolated into a shadow or dropout may read
    anything, and smoothing would carry it onto the candidates beside it.
    """
    h, _ = local_fit(at[seen], uv, rel, k=24, noise=noise)
    use = np.zeros(on.shape, bool)
    use[on] = seen
    full = np.zeros(on.shape)
    full[use] = -h
    smooth = masked_smooth(full, use, sigma=max(1.5, 1e-3 / lattice.step))
    smooth[on] = np.where(candidates, smooth[on], np.nan)
    i, j = np.unravel_index(np.nanargmax(smooth), smooth.shape)
    # a parabola through the peak and its lattice neighbours puts the spot between nodes
    offset = [_vertex(smooth, (i, j), axis) for axis in (0, 1)]
    return lattice.to_uv(np.array([[i + offset[0], j + offset[1]]]))


def _vertex(values: np.ndarray, peak: tuple[int, int], axis: int) -> float:
    """Sub-node offset (-0.5..0.5) of a parabola's vertex through the peak and its two neighbours on `axis`."""
    index = peak[axis]
    if index == 0 or index == values.shape[axis] - 1:
        return 0.0
    step = np.eye(2, dtype=int)[axis]
    before, centre, after = (values[tuple(np.array(peak) + k * step)] for k in (-1, 0, 1))
    curvature = before - 2 * centre + after
    if not np.isfinite(curvature) or curvature >= 0:
        return 0.0
    return float(np.clip(0.5 * (before - after) / curvature, -0.5, 0.5))


def depth_at(spot: np.ndarray, uv: np.ndarray, rel: np.ndarray, noise: float) -> tuple[float, float, float]:
    """Depth at `spot` by local quadrics on growing neighbourhoods, stopping before they disagree.

    Small neighbourhoods are unbiased but noisy; large ones are steady but flatten a sharp bottom (a
    cone's tip) or reach a wall. The intersection-of-confidence-intervals rule keeps the largest
    neighbourhood whose estimate agrees with every smaller one. Returns the depth, its standard error
    and its move from the smallest neighbourhood extrapolated to no neighbourhood (see Deepest).
    """
    order = np.argsort(np.linalg.norm(uv - spot, axis=1))
    low, high, chosen, first, rejected = -np.inf, np.inf, None, None, None
    for k in NEIGHBOURHOODS:
        if k > len(uv):
            break
        depth, std = _quadric_depth(uv[order[:k]] - spot, rel[order[:k]], noise)
        low, high = max(low, depth - ICI_THRESHOLD * std), min(high, depth + ICI_THRESHOLD * std)
        if low > high and chosen is not None:
            rejected = (depth, k)
            break
        chosen = (depth, std, k)
        first = depth if first is None else first
    if chosen is None:
        depth, std = _quadric_depth(uv - spot, rel, noise)
        return depth, std, 0.0
    depth, std, k = chosen
    shifts = [0.0]
    if k > NEIGHBOURHOODS[0]:
        shifts.append(_extrapolated(first, NEIGHBOURHOODS[0], depth, k))
    if rejected is not None:
        # the neighbourhood that disagreed moved by as much per unit of radius: a cone's tip, flattened
        # even by the chosen one (when that is the smallest, the only evidence of it)
        shifts.append(_extrapolated(depth, k, *rejected))
    return depth, std, max(shifts, key=abs)


def _extrapolated(small: float, k_small: int, large: float, k_large: int) -> float:
    """Bias at the larger neighbourhood of a fit that flattens in proportion to its radius (see Deepest)."""
    ratio = np.sqrt(k_large / k_small)  # radius ratio: k nearest points cover a disc of area ~ k
    return (large - small) * ratio / (ratio - 1.0)


def _quadric_depth(offsets: np.ndarray, rel: np.ndarray, noise: float) -> tuple[float, float]:
    """Depth (minus the height) of a weighted robust local quadric at the origin, and its standard error."""
    radius = np.linalg.norm(offsets, axis=1).max() + 1e-12
    d = offsets / radius
    a = np.column_stack([np.ones(len(d)), d, d[:, 0] ** 2, d[:, 0] * d[:, 1], d[:, 1] ** 2])  # (k, 6)
    w = np.exp(-0.5 * (np.linalg.norm(d, axis=1) / 0.6) ** 2)
    coef = np.linalg.lstsq(a * np.sqrt(w)[:, None], rel * np.sqrt(w), rcond=None)[0]
    resid = rel - a @ coef
    scale = max(noise, 1.4826 * float(np.median(np.abs(resid))))
    t = resid / (4.685 * scale)
    w = w * np.where(np.abs(t) < 1, (1 - t**2) ** 2, 0.0)
    aw = a * w[:, None]
    inv = np.linalg.pinv(a.T @ aw)
    coef = inv @ (aw.T @ rel)
    var = scale**2 * (inv @ (aw.T @ aw) @ inv)[0, 0]  # sandwich: weights are not inverse variances
    return float(-coef[0]), float(np.sqrt(max(var, 0.0)))
