"""Fields on a regular (u, v) grid over the wound: the wound-fraction field and the bed height field."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse.linalg import spsolve
from scipy.spatial import cKDTree

MAX_NODES = 160_000
FIT_CHUNK = 4096  # query points per local-fit chunk


@dataclass(frozen=True)
class Grid:
    """Nodes at (u0 + i*step, v0 + j*step) for i < nu, j < nv; arrays are indexed [i, j]."""

    u0: float
    v0: float
    step: float
    nu: int
    nv: int

    @classmethod
    def around(cls, uv: np.ndarray, margin: float, step: float) -> Grid:
        lo, hi = uv.min(axis=0) - margin, uv.max(axis=0) + margin
        step = max(step, float(np.sqrt(np.prod(hi - lo) / MAX_NODES)))
        nu, nv = (np.ceil((hi - lo) / step).astype(int) + 1).tolist()
        return cls(float(lo[0]), float(lo[1]), step, nu, nv)

    def nodes(self) -> np.ndarray:
        """(nu * nv, 2) node coordinates in [i, j] raster order."""
        iu, iv = np.meshgrid(np.arange(self.nu), np.arange(self.nv), indexing="ij")
        return np.column_stack([self.u0 + iu.ravel() * self.step, self.v0 + iv.ravel() * self.step])

    def to_uv(self, index_coords: np.ndarray) -> np.ndarray:
        """Fractional (i, j) positions, e.g. contour vertices, to (u, v)."""
        return np.column_stack([self.u0 + index_coords[:, 0] * self.step, self.v0 + index_coords[:, 1] * self.step])

    def refine(self, factor: int) -> Grid:
        """The same box sampled `factor` times more finely (for area integration)."""
        return Grid(self.u0, self.v0, self.step / factor, (self.nu - 1) * factor + 1, (self.nv - 1) * factor + 1)


def wound_vote(grid: Grid, uv: np.ndarray, is_wound: np.ndarray, k: int = 8) -> np.ndarray:
    """Share of wound among each node's k nearest points (distance-weighted), (nu, nv), 0..1."""
    dist, idx = cKDTree(uv).query(grid.nodes(), k=k, workers=-1)  # (M, k)
    weights = np.exp(-0.5 * (dist / (dist[:, -1:] + 1e-12)) ** 2)
    vote = (weights * is_wound[idx]).sum(axis=1) / weights.sum(axis=1)
    return vote.reshape(grid.nu, grid.nv)


def local_fit(query: np.ndarray, uv: np.ndarray, h: np.ndarray, k: int, quadratic: bool = False,
              noise: float | None = None, tree: cKDTree | None = None,
              weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Height and slope at each query point by weighted local polynomial regression on k neighbours.

    A local plane (or quadratic) removes the bias a plain neighbourhood mean has where the neighbourhood
    is lopsided (near the outline) or tilted (on walls). Tukey weights against `noise` drop flying pixels;
    `weights` (N,), if given, weigh the points themselves (see height_weights).
    Returns heights (M,) and gradients (M, 2).
    """
    tree = tree if tree is not None else cKDTree(uv)
    k = min(k, len(uv))

    def fit(chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return _fit_chunk(chunk, tree, uv, h, k, quadratic and k >= 12, noise, weights)

    # Query points are independent: chunks bound the (M, k, T) temporaries and run on every core, since
    # the tree query, einsum and batched solve all release the GIL.
    chunks = [query[i: i + FIT_CHUNK] for i in range(0, len(query), FIT_CHUNK)] or [query]
    if len(chunks) == 1:
        return fit(chunks[0])
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        parts = list(pool.map(fit, chunks))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _fit_chunk(query: np.ndarray, tree: cKDTree, uv: np.ndarray, h: np.ndarray, k: int, quadratic: bool,
               noise: float | None, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    dist, idx = tree.query(query, k=k)  # (M, k)
    dist, idx = dist.reshape(len(query), k), idx.reshape(len(query), k)  # k == 1 drops an axis
    bandwidth = dist[:, -1:] + 1e-12  # (M, 1)
    # offsets in units of the neighbourhood radius keep the quadratic columns well conditioned
    d = (uv[idx] - query[:, None, :]) / bandwidth[..., None]  # (M, k, 2)
    w = np.exp(-0.5 * (dist / (0.6 * bandwidth)) ** 2)  # (M, k)
    if weights is not None:
        w = w * weights[idx]
    cols = [np.ones_like(dist), d[..., 0], d[..., 1]]
    if quadratic:
        cols += [d[..., 0] ** 2, d[..., 0] * d[..., 1], d[..., 1] ** 2]
    a = np.stack(cols, axis=-1)  # (M, k, T)
    target = h[idx]  # (M, k)
    coef = _weighted_solve(a, target, w)
    if noise is not None:  # one robust reweighting pass
        resid = target - np.einsum("mkt,mt->mk", a, coef)
        t = resid / (4.685 * max(noise, 1e-5))
        coef = _weighted_solve(a, target, w * np.where(np.abs(t) < 1, (1 - t**2) ** 2, 1e-6))
    return coef[:, 0], coef[:, 1:3] / bandwidth


def height_weights(uv: np.ndarray, h: np.ndarray, k: int = 24, floor: float = 0.01) -> np.ndarray:
    """Weight (N,) of each point as a sample of the height field h(u, v): the squared vertical part of its normal.

    Range noise along the normal of a surface tilted by t moves a point's height by the noise / cos t, so
    the inverse variance of a point as a height sample is cos^2 t. Where a wall stands vertical (a crater's)
    its points pile up over the outline at every height and would drag the bed fit up beside it; weighed
    this way they hardly count. The normal is the local plane's through the k nearest points in (u, v, h)
    (as many as the bed fit takes); the floor keeps a neighbourhood of wall alone fittable.
    """
    pts = np.column_stack([uv, h])
    _, idx = cKDTree(pts).query(pts, k=min(k, len(pts)), workers=-1)  # (N, k)
    # offsets from each point in float32 (centred first, so they keep about a nanometre): half the memory
    local = (pts - pts.mean(axis=0)).astype(np.float32)
    offsets = local[idx] - local[:, None, :]  # (N, k, 3)
    mean = offsets.mean(axis=1)  # (N, 3)
    cov = np.einsum("nki,nkj->nij", offsets, offsets) / idx.shape[1] - mean[:, :, None] * mean[:, None, :]
    normal = np.linalg.eigh(cov)[1][:, :, 0]  # (N, 3): the direction of least variance
    return np.maximum(normal[:, 2].astype(float) ** 2, floor)


def _weighted_solve(a: np.ndarray, target: np.ndarray, w: np.ndarray) -> np.ndarray:
    aw = a * w[..., None]  # weighting once: einsum over three operands loops naively and runs twice as long
    ata = np.einsum("mkt,mks->mts", aw, a)  # (M, T, T)
    atb = np.einsum("mkt,mk->mt", aw, target)  # (M, T)
    ridge = 1e-9 * np.trace(ata, axis1=1, axis2=2)[:, None, None] * np.eye(a.shape[-1])
    return np.linalg.solve(ata + ridge, atb[..., None])[..., 0]


def masked_smooth(field: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing of `field` using only nodes inside `mask` (normalised convolution)."""
    num = ndimage.gaussian_filter(np.where(mask, field, 0.0), sigma)
    den = ndimage.gaussian_filter(mask.astype(float), sigma)
    return np.where(mask, num / np.maximum(den, 1e-9), np.nan)


def harmonic_fill(values: np.ndarray, known: np.ndarray, unknown: np.ndarray) -> np.ndarray:
    """`values` with the `unknown` nodes replaced by the harmonic interpolant (Laplace's equation).

    Nodes that are neither known nor unknown, and nodes beyond the grid, hold 0: the skin's level where
    the opening ends. The bed hidden behind a rim or in a dropout is unseen, so no fit may extrapolate into
    it; the smoothest surface joining what was seen to the outline is the least committal guess.
    """
    out = np.where(known, values, 0.0)
    n = int(unknown.sum())
    if not n:
        return out
    number = np.full(unknown.shape, -1)
    number[unknown] = np.arange(n)
    ui, uj = np.nonzero(unknown)
    rows, cols, coef = [np.arange(n)], [np.arange(n)], [np.full(n, 4.0)]
    rhs = np.zeros(n)
    for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        ni, nj = ui + di, uj + dj
        on_grid = (ni >= 0) & (ni < unknown.shape[0]) & (nj >= 0) & (nj < unknown.shape[1])
        ni, nj = np.clip(ni, 0, unknown.shape[0] - 1), np.clip(nj, 0, unknown.shape[1] - 1)
        other = np.where(on_grid, number[ni, nj], -1)
        rows.append(np.flatnonzero(other >= 0))
        cols.append(other[other >= 0])
        coef.append(np.full(len(cols[-1]), -1.0))
        rhs += np.where(on_grid & (other < 0), out[ni, nj], 0.0)  # a known or outside neighbour's value
    system = sparse.csr_matrix((np.concatenate(coef), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    out[unknown] = spsolve(system, rhs)
    return out
