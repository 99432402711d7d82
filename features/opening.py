"""The wound opening on a (u, v) grid: where the intact skin ends, found from the skin points' density.

The outline is where intact skin stops. Each skin point stands for a patch of skin, so a kernel density
of the skin points, divided by the density intact skin has there, reads about 1 on skin, 0 where there
is none, and 1/2 on the skin's edge, whatever the wound beyond it does. Range noise throws points of a
steep wall sideways over the skin, and a rim hides part of the bed from an oblique camera: neither moves
the skin's edge, while both would move an outline drawn between wound and skin points. The regions
without skin that hold wound points are the opening; one that runs off the grid (a wound at the scan's
edge) is kept only near its wound points.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from features.fields import Grid
from features.surface import SkinSurface

KERNEL = 1.0  # kernel width, in skin-point spacings: smooths the sampling pattern, keeps the edge sharp
SPLAT_SUBCELL = 2  # density raster this many times finer than the grid
ENCLOSED = 0.75  # share of a data gap's rim that must be skin for the gap to count as a dropout in the skin
MIN_SUPPORT = 0.3  # least share of the kernel over data that the expected density is scaled down to


def skin_spacing(skin_tree: cKDTree, sample: int = 4000) -> float:
    """Side of the patch of skin each point stands for: sqrt(area per point), from 8-neighbour discs."""
    pick = skin_tree.data[:: max(1, skin_tree.n // sample)]
    r8 = skin_tree.query(pick, k=9, workers=-1)[0][:, -1]
    # the median ignores points on the wound's edge, whose neighbours all lie on one side
    return float(np.sqrt(np.pi * np.median(r8) ** 2 / 8))


def point_density(grid: Grid, uv: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian kernel density of the points (points per m²) at the grid nodes, (nu, nv)."""
    sub = grid.step / SPLAT_SUBCELL
    pad = int(np.ceil(3 * sigma / sub)) + 1
    shape = ((grid.nu - 1) * SPLAT_SUBCELL + 1 + 2 * pad, (grid.nv - 1) * SPLAT_SUBCELL + 1 + 2 * pad)
    pos = (uv - [grid.u0, grid.v0]) / sub + pad  # fractional raster coordinates
    inside = np.all((pos >= 0) & (pos < np.array(shape) - 1), axis=1)
    pos = pos[inside]
    base = np.floor(pos).astype(int)
    frac = pos - base
    counts = np.zeros(shape)
    for di in (0, 1):  # bilinear splatting keeps sub-cell positions
        for dj in (0, 1):
            w = (frac[:, 0] if di else 1 - frac[:, 0]) * (frac[:, 1] if dj else 1 - frac[:, 1])
            np.add.at(counts, (base[:, 0] + di, base[:, 1] + dj), w)
    density = ndimage.gaussian_filter(counts, sigma / sub, mode="constant") / sub**2
    return density[pad: pad + shape[0] - 2 * pad: SPLAT_SUBCELL, pad: pad + shape[1] - 2 * pad: SPLAT_SUBCELL]


def expected_density(grid: Grid, density: np.ndarray, clear_skin: np.ndarray, surface: SkinSurface) -> np.ndarray:
    """Density intact skin would have at each node: a log-linear trend of the density per skin area.

    Fitted on nodes that are clearly skin; per skin area, so the limb's slope (which crowds points in
    (u, v)) is put back through the Jacobian at each node.
    """
    nodes = grid.nodes()
    jac = np.sqrt(1.0 + (surface.gradient(nodes) ** 2).sum(axis=1))
    fit_at = clear_skin.ravel() & (density.ravel() > 0)
    target = np.log(density.ravel()[fit_at] / jac[fit_at])
    if fit_at.sum() < 30:
        return np.full(density.shape, np.exp(np.median(target)) if len(target) else np.inf) * jac.reshape(
            density.shape)
    centre = nodes[fit_at].mean(axis=0)
    design = np.column_stack([np.ones(fit_at.sum()), nodes[fit_at] - centre])
    keep = np.ones(len(target), bool)
    for _ in range(2):  # trim nodes on small holes or clumps, then refit
        coef, *_ = np.linalg.lstsq(design[keep], target[keep], rcond=None)
        resid = target - design @ coef
        keep = np.abs(resid) < 3 * 1.4826 * np.median(np.abs(resid[keep])) + 1e-9
    trend = np.exp(np.column_stack([np.ones(len(nodes)), nodes - centre]) @ coef)
    return (trend * jac).reshape(density.shape)


def opening_field(grid: Grid, uv: np.ndarray, is_wound: np.ndarray, surface: SkinSurface,
                  vote: np.ndarray) -> np.ndarray:
    """Skin absence (0..1) on the grid, kept only on regions of the opening; its 0.5 level is the outline.

    Args:
        vote: the wound-point vote at the nodes (nu, nv), used to tell the opening from holes in the skin.
    """
    uv_skin = uv[~is_wound]
    skin_tree = cKDTree(uv_skin)
    spacing = skin_spacing(skin_tree)  # one tree of the skin points serves the spacing and the distances
    sigma = KERNEL * spacing
    density = point_density(grid, uv_skin, sigma)
    d_wound = cKDTree(uv[is_wound]).query(grid.nodes(), workers=-1)[0].reshape(density.shape)
    d_skin = skin_tree.query(grid.nodes(), workers=-1)[0].reshape(density.shape)
    clear_skin = (d_wound > 4 * sigma + 2 * spacing) & (d_skin < spacing)
    expected = expected_density(grid, density, clear_skin, surface)
    dropout = _skin_dropouts(d_skin, d_wound, spacing)
    if dropout.any():
        # A dropout takes its share of the kernel with it: the skin around it is judged against the density
        # its remaining data can give, and the dropout itself is skin, not a bump on the opening.
        support = ndimage.gaussian_filter((~dropout).astype(float), sigma / grid.step, mode="nearest")
        expected = expected * np.clip(support, MIN_SUPPORT, 1.0)
    absent = np.where(dropout, 0.0, np.clip(1.0 - density / expected, 0.0, 1.0))
    # A gap between the skin's edge and the wound's points (the bed a rim hides from an oblique camera) is
    # skinless, so it joins the opening: the outline stays where the skin stops (features.resolution
    # bounds what such a gap may hide, measure fills its depth).
    return absent * _opening_regions(absent >= 0.5, vote >= 0.5, d_wound, 3 * spacing + 2e-3)


def _skin_dropouts(d_skin: np.ndarray, d_wound: np.ndarray, spacing: float) -> np.ndarray:
    """Gaps in the data (no point within a spacing) whose rim is mostly skin: holes in the skin's data.

    A gap between skin and wound points (a shadow behind the rim) has wound along much of its rim and is
    left to the nearest points' labels.
    """
    gap = np.minimum(d_skin, d_wound) > spacing
    regions, count = ndimage.label(gap)
    if not count:
        return gap
    rim = ndimage.grey_dilation(regions, size=3) * ~gap  # which gap each rim node borders (one, where two meet)
    on_rim = rim > 0
    skin = np.bincount(rim[on_rim], weights=(d_skin < d_wound)[on_rim], minlength=count + 1)
    total = np.bincount(rim[on_rim], minlength=count + 1)
    enclosed = np.flatnonzero(skin >= ENCLOSED * np.maximum(total, 1))
    return np.isin(regions, enclosed[enclosed > 0])


def _opening_regions(skinless: np.ndarray, wound_side: np.ndarray, d_wound: np.ndarray, reach: float) -> np.ndarray:
    """1 on (and two nodes around) the skinless regions that hold wound, else 0.

    A region touching the grid's border runs off the scan: it is cut to `reach` from wound points.
    """
    regions, _ = ndimage.label(skinless)
    chosen = np.unique(regions[wound_side & skinless])
    chosen = chosen[chosen > 0]
    border = np.unique(np.concatenate([regions[0], regions[-1], regions[:, 0], regions[:, -1]]))
    keep = np.isin(regions, chosen)
    leaks = np.isin(regions, np.intersect1d(chosen, border))
    keep &= ~leaks | (d_wound <= reach)
    return ndimage.binary_dilation(keep, iterations=2).astype(float)
