"""Intact-skin reconstruction: a robust polynomial height field fitted to the periwound ring.

The skin is modelled in a local frame (u, v tangent, w out of the body) as w = f(u, v), a polynomial of
degree 1 to 4. The degree is chosen by leaving out angular sectors of the ring and predicting them, which
is the same task as predicting the skin across the wound opening. Curved skin (limbs, heels) needs the
higher degrees; a flat patch keeps a low one, so noise is not fitted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

DEGREES = (1, 2, 3, 4)
SECTORS = 8
MAX_RING_POINTS = 4000  # enough to pin 15 coefficients; more only costs time


@dataclass(frozen=True)
class SkinSurface:
    """w = f(u, v) in the frame (origin, axes); axes rows are u, v, w (w points out of the body)."""

    origin: np.ndarray  # (3,)
    axes: np.ndarray  # (3, 3)
    degree: int
    scale: float  # metres; u, v are divided by it before the monomials, for conditioning
    coef: np.ndarray  # (T,)
    cov: np.ndarray  # (T, T) coefficient covariance
    rms: float  # robust residual scale of the ring fit (metres)
    cv_rms: float  # held-out-sector prediction error (metres)
    cv_bias: float = 0.0  # RMS over held-out sectors of their median prediction error (metres)

    def to_local(self, points: np.ndarray) -> np.ndarray:
        """World points (N, 3) to local (u, v, w)."""
        return (points - self.origin) @ self.axes.T

    def to_world(self, local: np.ndarray) -> np.ndarray:
        return local @ self.axes + self.origin

    def height(self, uv: np.ndarray) -> np.ndarray:
        return _design(uv / self.scale, self.degree) @ self.coef

    def height_std(self, uv: np.ndarray) -> np.ndarray:
        """Standard error of f at uv from the coefficient covariance."""
        rows = _design(uv / self.scale, self.degree)
        return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", rows, self.cov, rows), 0.0))

    def gradient(self, uv: np.ndarray) -> np.ndarray:
        """(df/du, df/dv) at uv, (M, 2)."""
        du, dv = _design_gradient(uv / self.scale, self.degree)
        return np.stack([du @ self.coef, dv @ self.coef], axis=1) / self.scale

    def normal_local(self, uv: np.ndarray) -> np.ndarray:
        """Outward unit normals of the surface at uv in local coordinates, (M, 3)."""
        g = self.gradient(uv)
        n = np.column_stack([-g[:, 0], -g[:, 1], np.ones(len(g))])
        return n / np.linalg.norm(n, axis=1, keepdims=True)


def _monomials(degree: int) -> list[tuple[int, int]]:
    return [(i, d - i) for d in range(degree + 1) for i in range(d, -1, -1)]


def _design(uv: np.ndarray, degree: int) -> np.ndarray:
    u, v = uv[:, 0], uv[:, 1]
    return np.stack([u**i * v**j for i, j in _monomials(degree)], axis=1)  # (M, T)


def _design_gradient(uv: np.ndarray, degree: int) -> tuple[np.ndarray, np.ndarray]:
    u, v = uv[:, 0], uv[:, 1]
    terms = _monomials(degree)
    du = np.stack([i * u ** max(i - 1, 0) * v**j for i, j in terms], axis=1)
    dv = np.stack([j * u**i * v ** max(j - 1, 0) for i, j in terms], axis=1)
    return du, dv


def robust_lstsq(a: np.ndarray, b: np.ndarray, iterations: int = 6) -> tuple[np.ndarray, np.ndarray, float]:
    """Least squares with Tukey biweights (IRLS). Returns coefficients, final weights, robust scale."""
    weights = np.ones(len(b))
    coef = np.zeros(a.shape[1])
    scale = 0.0
    for _ in range(iterations):
        aw = a * weights[:, None]
        # normal equations: the columns are scaled monomials of degree <= 4, well conditioned enough, and
        # the small (T, T) solve runs ten times faster than an SVD of the tall matrix
        coef, *_ = np.linalg.lstsq(aw.T @ a, aw.T @ b, rcond=None)
        resid = b - a @ coef
        scale = max(1.4826 * float(np.median(np.abs(resid - np.median(resid)))), 1e-7)
        t = resid / (4.685 * scale)
        weights = np.where(np.abs(t) < 1, (1 - t**2) ** 2, 0.0)
    return coef, weights, scale


def _sector_cv(uvs: np.ndarray, w: np.ndarray, degree: int, centre: np.ndarray) -> tuple[float, float]:
    """Predicting each left-out angular sector (around the wound) from the others: the robust RMS error
    per point, and the RMS over sectors of each sector's median error.

    The second is the skin's systematic error over a patch the size of a sector, the error a volume
    integrated over the opening feels; per point it hides under the noise (both near the ring's rms).
    """
    angle = np.arctan2(uvs[:, 1] - centre[1], uvs[:, 0] - centre[0])
    sector = np.floor((angle + np.pi) / (2 * np.pi) * SECTORS).astype(int) % SECTORS
    errors, biases = [], []
    for s in range(SECTORS):
        held = sector == s
        if held.sum() < 5 or (~held).sum() < 3 * len(_monomials(degree)):
            continue
        coef, _, _ = robust_lstsq(_design(uvs[~held], degree), w[~held], iterations=3)
        errors.append(w[held] - _design(uvs[held], degree) @ coef)
        biases.append(np.median(errors[-1]))
    if not errors:
        return np.inf, np.inf
    resid = np.concatenate(errors)
    return float(1.4826 * np.median(np.abs(resid))), float(np.sqrt(np.mean(np.square(biases))))


def _frame(ring: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centroid and PCA axes of the ring; the smallest-variance direction approximates the skin normal."""
    origin = ring.mean(axis=0)
    _, _, vt = np.linalg.svd(ring - origin, full_matrices=False)
    return origin, vt  # rows: u, v, w


def periwound_ring(wound: np.ndarray, skin: np.ndarray, spacing: float,
                   ring_mm: tuple[float, float] = (1.5, 14.0)) -> np.ndarray | None:
    """The skin points (of `skin`, (M, 3)) the intact surface is fitted to: a band around the wound points.

    The band starts a little off the outline (edge points are half wound) and reaches further for larger
    wounds, widening where there is too little skin; None when even the widest band holds under 60 points.
    """
    radius = np.sqrt(len(wound) * spacing**2 / np.pi)  # equivalent radius of the opening
    inner = max(ring_mm[0] * 1e-3, 2.5 * spacing)
    outer = float(np.clip(0.6 * radius + 4e-3, 6e-3, ring_mm[1] * 1e-3))
    dist, _ = cKDTree(wound).query(skin, distance_upper_bound=2 * outer, workers=-1)
    for band in (outer, 1.5 * outer, 2 * outer):
        ring = skin[(dist >= inner) & (dist <= band)]
        if len(ring) >= 60:
            return ring
    return None


def fit_skin(ring: np.ndarray, wound: np.ndarray) -> SkinSurface:
    """Fit the intact-skin surface to ring points (M, 3); orient it so the wound lies below it."""
    if len(ring) > MAX_RING_POINTS:
        ring = ring[np.random.default_rng(0).choice(len(ring), MAX_RING_POINTS, replace=False)]
    origin, axes = _frame(ring)
    local = (ring - origin) @ axes.T
    centre = ((wound.mean(axis=0) - origin) @ axes.T)[:2]
    scale = float(np.max(np.linalg.norm(local[:, :2], axis=1)))
    uvs, w = local[:, :2] / scale, local[:, 2]
    usable = [d for d in DEGREES if len(w) >= 6 * len(_monomials(d))] or [1]
    scores = {d: _sector_cv(uvs, w, d, centre / scale) for d in usable}
    best = min(rms for rms, _ in scores.values())
    # prefer the simplest degree whose held-out error is within 5% of the best
    degree = min(d for d in usable if scores[d][0] <= 1.05 * best + 1e-9)
    surface = _finish(origin, axes, degree, scale, uvs, w, *scores[degree])
    if _median_wound_offset(surface, wound) > 0:  # the wound is a cavity: flip w so it points outward
        flipped = axes * np.array([[1.0], [-1.0], [-1.0]])  # keeps the frame right-handed
        local = (ring - origin) @ flipped.T
        surface = _finish(origin, flipped, degree, scale, local[:, :2] / scale, local[:, 2], *scores[degree])
    return surface


def _finish(origin, axes, degree, scale, uvs, w, cv_rms, cv_bias) -> SkinSurface:
    a = _design(uvs, degree)
    coef, weights, rms = robust_lstsq(a, w)
    kept = weights > 0
    # sandwich-free covariance of the weighted fit; adequate with thousands of ring points
    aw = a[kept] * np.sqrt(weights[kept])[:, None]
    cov = rms**2 * np.linalg.pinv(aw.T @ aw)
    return SkinSurface(origin, axes, degree, scale, coef, cov, rms, cv_rms, cv_bias)


def _median_wound_offset(surface: SkinSurface, wound: np.ndarray) -> float:
    local = surface.to_local(wound)
    return float(np.median(local[:, 2] - surface.height(local[:, :2])))
