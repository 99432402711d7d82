"""Exact wound measurements on the fine (u, v) grid of the generating surfaces (docs/scan-format.md names)."""

from __future__ import annotations

import numpy as np
from scipy.spatial import ConvexHull
from skimage import measure

from features.io import TISSUE_CLASSES
from features.phantoms.surfaces import Surface
from features.phantoms.wounds import FineGrid, bed_points


def wound_truth(surface: Surface, grid: FineGrid, field: np.ndarray, depth: np.ndarray,
                tissue: np.ndarray | None = None) -> dict:
    """Area, volume, depths, perimeter, length, width, bed area and tissue fractions of one opening."""
    uu, vv = grid.mesh()
    inside = field >= 0.5
    jac = surface.frame(uu, vv)[2]
    cell = grid.step**2
    skin, bed = bed_points(surface, grid, depth)
    outline = outline_points(surface, grid, field)
    length, width = chord_and_width(surface, outline, *centroid(uu, vv, jac, inside))
    weight = jac[inside]
    return {
        "area_cm2": float(weight.sum() * cell * 1e4),
        "volume_cm3": float(enclosed_volume(skin, bed) * 1e6),
        "max_depth_mm": float(depth.max() * 1e3),
        "mean_depth_mm": float((depth[inside] * weight).sum() / weight.sum() * 1e3),
        "perimeter_cm": float(sum(np.linalg.norm(np.diff(c, axis=0), axis=1).sum() for c in outline) * 100),
        "length_cm": length * 100,
        "width_cm": width * 100,
        "surface_area_cm2": float((weight.sum() * cell + mesh_area(bed) - mesh_area(skin)) * 1e4),
        "tissue": None if tissue is None else tissue_fractions(tissue[inside], weight),
    }


def enclosed_volume(skin: np.ndarray, bed: np.ndarray) -> float:
    """Volume of the closed mesh of the S grid and the reversed B grid (they meet on the grid's border)."""
    origin = skin[skin.shape[0] // 2, skin.shape[1] // 2]  # small coordinates: little cancellation
    return _grid_signed_volume(skin - origin) - _grid_signed_volume(bed - origin)


def _grid_signed_volume(p: np.ndarray) -> float:
    """Sum of origin tetrahedra over the grid's triangles, oriented so that +w faces out."""
    a, b, c, d = p[:-1, :-1], p[:-1, 1:], p[1:, 1:], p[1:, :-1]  # (nv-1, nu-1, 3) each
    bc, cd = np.cross(b, c), np.cross(c, d)
    return float((np.einsum("ijk,ijk->", a, bc) + np.einsum("ijk,ijk->", a, cd)) / 6.0)


def mesh_area(p: np.ndarray) -> float:
    """Area of the grid's triangle mesh; B's minus S's is the area the bed adds, walls and kinks included."""
    a, b, c, d = p[:-1, :-1], p[:-1, 1:], p[1:, 1:], p[1:, :-1]
    return float((np.linalg.norm(np.cross(b - a, c - a), axis=-1)
                  + np.linalg.norm(np.cross(c - a, d - a), axis=-1)).sum() / 2)


def outline_points(surface: Surface, grid: FineGrid, field: np.ndarray) -> list[np.ndarray]:
    """Every closed 0.5-contour of the opening field, mapped onto S: a list of (K, 3) polylines."""
    out = []
    for contour in measure.find_contours(field, 0.5):
        u = grid.u0 + contour[:, 1] * grid.step
        v = grid.v0 + contour[:, 0] * grid.step
        out.append(surface.points(u, v))
    return out


def centroid(uu: np.ndarray, vv: np.ndarray, jac: np.ndarray, inside: np.ndarray) -> tuple[float, float]:
    """Area-weighted (u, v) centroid of the opening."""
    w = jac[inside]
    return float((uu[inside] * w).sum() / w.sum()), float((vv[inside] * w).sum() / w.sum())


def chord_and_width(surface: Surface, outline: list[np.ndarray], uc: float, vc: float) -> tuple[float, float]:
    """Longest chord, and extent across it, of the outline projected on the tangent plane at (uc, vc)."""
    origin, normal, _ = surface.frame(np.array(uc), np.array(vc))
    hu = surface.height(np.array(uc), np.array(vc))[1]
    e1 = np.array([1.0, 0.0, float(hu)])
    e1 -= (e1 @ normal) * normal
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(normal, e1)
    pts = np.concatenate(outline) - origin
    flat = np.stack([pts @ e1, pts @ e2], axis=1)  # (K, 2) in the tangent plane
    hull = flat[ConvexHull(flat).vertices]
    gaps = np.linalg.norm(hull[:, None, :] - hull[None, :, :], axis=-1)
    i, j = np.unravel_index(np.argmax(gaps), gaps.shape)
    along = (hull[j] - hull[i]) / gaps[i, j]
    across = flat @ np.array([-along[1], along[0]])
    return float(gaps[i, j]), float(np.ptp(across))


def tissue_fractions(classes: np.ndarray, weight: np.ndarray) -> dict[str, float]:
    """Area fraction of the opening per tissue class name."""
    total = weight.sum()
    return {name: float(weight[classes == code].sum() / total) for code, name in TISSUE_CLASSES.items()}
