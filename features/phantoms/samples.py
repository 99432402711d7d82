"""Points on the skin and the bed dense enough to splat without holes: the renderer's input."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.phantoms.surfaces import Surface
from features.phantoms.wounds import FineGrid

MAX_SPLITS = 400  # samples added along one stretched cell at most


@dataclass(frozen=True)
class Samples:
    """Render samples: parameters (u, v), positions (M, 3) and unit outward normals (M, 3), local frame."""

    u: np.ndarray
    v: np.ndarray
    pos: np.ndarray
    normal: np.ndarray


def render_samples(surface: Surface, grid: FineGrid, bed: np.ndarray, spacing: float) -> Samples:
    """Skin outside the fine grid, the bed's grid nodes, and extra samples along stretched (steep) cells."""
    su, sv = surface.skin_grid(spacing)
    outside = ~grid.contains(su, sv)
    su, sv = su[outside], sv[outside]
    pos, normal, _ = surface.frame(su, sv)
    bed_normal = grid_normals(bed, grid.step)
    stride = max(1, int(spacing / grid.step))
    uu, vv = grid.mesh()
    parts = [(su, sv, pos, normal),
             tuple(a[::stride, ::stride].reshape(-1, *a.shape[2:]) for a in (uu, vv, bed, bed_normal)),
             stretched_cells(grid, bed, bed_normal, stride, spacing)]
    return Samples(*(np.concatenate([p[k] for p in parts]) for k in range(4)))


def grid_normals(bed: np.ndarray, step: float) -> np.ndarray:
    """Unit normals of a (nv, nu, 3) grid surface, oriented like S (out of the body)."""
    bu, bv = np.gradient(bed, step, step, axis=(1, 0))
    n = np.cross(bu, bv)
    return n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)


def stretched_cells(grid: FineGrid, bed: np.ndarray, bed_normal: np.ndarray, stride: int,
                    spacing: float) -> tuple[np.ndarray, ...]:
    """Samples along the most stretched direction of every coarse cell longer than `spacing` on the bed."""
    p = bed[::stride, ::stride]
    g = grid.step * stride
    eu = ((p[:-1, 1:] - p[:-1, :-1]) + (p[1:, 1:] - p[1:, :-1])) / (2 * g)  # dB/du per cell
    ev = ((p[1:, :-1] - p[:-1, :-1]) + (p[1:, 1:] - p[:-1, 1:])) / (2 * g)
    e, f, h = (eu * eu).sum(-1), (eu * ev).sum(-1), (ev * ev).sum(-1)
    lam = (e + h) / 2 + np.sqrt(((e - h) / 2) ** 2 + f**2)  # largest squared stretch
    du, dv = np.where(e >= h, lam - h, f), np.where(e >= h, f, lam - e)
    norm = np.maximum(np.hypot(du, dv), 1e-12)
    du, dv = du / norm, dv / norm
    half = g / 2 / np.maximum(np.abs(du), np.abs(dv))  # half the line's (u, v) length inside the cell
    count = np.minimum(np.ceil(2 * half * np.sqrt(lam) / spacing), MAX_SPLITS).astype(np.int64)
    rows, cols = np.nonzero(count >= 2)
    n = count[rows, cols]
    cell = np.repeat(np.arange(len(n)), n)
    t = (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n) + 0.5) / n[cell] * 2 - 1  # in (-1, 1)
    r, c = rows[cell], cols[cell]
    step = t * half[r, c]
    u = grid.u0 + (c + 0.5) * g + step * du[r, c]
    v = grid.v0 + (r + 0.5) * g + step * dv[r, c]
    row, col, _ = grid.nearest(u, v)
    return u, v, bilinear(grid, bed, u, v), bed_normal[row, col]


def bilinear(grid: FineGrid, field: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Bilinear interpolation of a (nv, nu, ...) grid field at (u, v) on the grid."""
    fr, fc = grid.to_index(u, v)
    r0 = np.clip(np.floor(fr).astype(np.int64), 0, grid.nv - 2)
    c0 = np.clip(np.floor(fc).astype(np.int64), 0, grid.nu - 2)
    a, b = (fr - r0)[:, None], (fc - c0)[:, None]
    return ((1 - a) * ((1 - b) * field[r0, c0] + b * field[r0, c0 + 1])
            + a * ((1 - b) * field[r0 + 1, c0] + b * field[r0 + 1, c0 + 1]))
