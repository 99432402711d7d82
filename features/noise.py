"""Range noise of the scan, read off the intact skin: its size, and how far it is shared between neighbours.

Depth cameras often upsample their native raster (bilinear interpolation of a coarser depth map), so
neighbouring points carry much the same noise. Averaging k such points then removes far less noise than
sigma / sqrt(k) promises, and two interleaved halves of the points are no longer independent. The design
effect says by how much: the variance of a mean of many neighbouring points is deff * sigma^2 / k.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from features.fields import local_fit
from features.surface import SkinSurface

MAX_DESIGN_EFFECT = 16.0  # a 4x upsampled raster; beyond it the estimate is more trend than noise
_CHI2_1_MEDIAN = 0.4549  # median of a chi-square with one degree of freedom: robust variogram from medians


def local_noise(uv: np.ndarray, rel: np.ndarray, surface: SkinSurface) -> float:
    """Range noise: robust spread of skin points about a local plane through their neighbours."""
    near = np.abs(rel) < max(5e-3, 6 * surface.rms)
    uv, rel = uv[near], rel[near]
    if len(uv) < 30:
        return surface.rms
    pick = np.random.default_rng(0).choice(len(uv), size=min(3000, len(uv)), replace=False)
    fit, _ = local_fit(uv[pick], uv, rel, k=16)  # neighbours from every skin point, so density is native
    resid = rel[pick] - fit
    # the point itself is among its 16 neighbours, which shrinks its residual by about (1 - 3/16)
    return float(1.4826 * np.median(np.abs(resid - np.median(resid))) / (1 - 3 / 16))


def design_effect(uv: np.ndarray, rel: np.ndarray, surface: SkinSurface, spacing: float) -> float:
    """How many times the variance of a local mean exceeds sigma^2 / k, from the skin's variogram.

    The correlation of nearest neighbours is one minus the ratio of their half squared difference to
    that of points three spacings apart (little shared noise there, and the skin's own shape still adds
    almost nothing). Noise smoothed by a Gaussian kernel of width s spacings has neighbour correlation
    exp(-1 / 4 s^2) and design effect 4 pi s^2 = -pi / ln(correlation), which is what is returned; a
    bilinear 2x upsampling (correlation about 0.6-0.8) gives 6-14, independent noise 1.
    """
    near = np.abs(rel) < max(5e-3, 6 * surface.rms)
    uv, rel = uv[near], rel[near]
    if len(uv) < 100:
        return 1.0
    tree = cKDTree(uv)
    sites = np.random.default_rng(1).choice(len(uv), size=min(400, len(uv)), replace=False)
    neighbours = tree.query_ball_point(uv[sites], 3.5 * spacing, workers=-1)
    i = np.repeat(sites, [len(n) for n in neighbours])
    j = np.concatenate(neighbours).astype(int)
    lag = np.linalg.norm(uv[i] - uv[j], axis=1) / spacing
    half_sq = 0.5 * (rel[i] - rel[j]) ** 2
    close, far = (lag > 0.5) & (lag < 1.5), lag >= 2.5
    if close.sum() < 50 or far.sum() < 50:
        return 1.0
    rho = 1.0 - np.median(half_sq[close]) / max(float(np.median(half_sq[far])), 1e-18)
    if rho <= np.exp(-np.pi):  # deff below 1: no measurable sharing
        return 1.0
    return float(min(-np.pi / np.log(min(rho, 0.999)), MAX_DESIGN_EFFECT))
