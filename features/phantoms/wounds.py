"""Wound openings on a fine (u, v) grid and their depth profiles d(u, v) >= 0 below the skin."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from features.io import Camera
from features.phantoms.surfaces import Surface, random_waves

PROFILES = ("bowl", "crater", "cone", "irregular")
FINE_STEP = 1e-4  # metres: the truth grid
PAD = 2e-3  # intact skin kept around the opening inside the fine grid, so that d = 0 on its border
MIN_MARGIN = 0.012  # intact skin between the outline and the domain's edge
MAX_DEPTH_RATIO = 0.8  # depth at most this fraction of the opening's equivalent radius


@dataclass(frozen=True)
class FineGrid:
    """Cell centres u0 + j step, v0 + i step for j < nu, i < nv; arrays are indexed [i, j] (v, u)."""

    u0: float
    v0: float
    nu: int
    nv: int
    step: float = FINE_STEP

    def mesh(self) -> tuple[np.ndarray, np.ndarray]:
        """(U, V), each (nv, nu)."""
        return np.meshgrid(self.u0 + self.step * np.arange(self.nu), self.v0 + self.step * np.arange(self.nv))

    def to_index(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fractional (row, column) of (u, v)."""
        return (v - self.v0) / self.step, (u - self.u0) / self.step

    def nearest(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Row and column of the nearest cell, and whether (u, v) lies on the grid at all."""
        row, col = (np.rint(x).astype(np.int64) for x in self.to_index(u, v))
        inside = (row >= 0) & (row < self.nv) & (col >= 0) & (col < self.nu)
        return np.clip(row, 0, self.nv - 1), np.clip(col, 0, self.nu - 1), inside

    def contains(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Whether (u, v) lies within the grid's rectangle."""
        return self.nearest(u, v)[2]


def grid_around(u_lo: float, u_hi: float, v_lo: float, v_hi: float, step: float = FINE_STEP) -> FineGrid:
    """A grid snapped to multiples of `step` covering the box plus PAD on every side."""
    i0, j0 = np.floor((v_lo - PAD) / step), np.floor((u_lo - PAD) / step)
    i1, j1 = np.ceil((v_hi + PAD) / step), np.ceil((u_hi + PAD) / step)
    return FineGrid(float(j0 * step), float(i0 * step), int(j1 - j0) + 1, int(i1 - i0) + 1, step)


# ---------------------------------------------------------------------------------------------- outlines


@dataclass(frozen=True)
class Blob:
    """A smooth star-shaped outline: radius R (1 + sum_k a_k cos k t + b_k sin k t), stretched and turned."""

    cos: np.ndarray
    sin: np.ndarray
    stretch: float
    angle: float

    def radius(self, theta: np.ndarray) -> np.ndarray:
        """Outline radius at angle theta for R = 1."""
        k = np.arange(2, 2 + len(self.cos))
        arg = np.multiply.outer(theta, k)
        return 1.0 + np.cos(arg) @ self.cos + np.sin(arg) @ self.sin

    def equivalent_radius(self) -> float:
        """Radius of the circle of equal area for R = 1 (stretching keeps the area)."""
        theta = np.linspace(0, 2 * np.pi, 2048, endpoint=False)
        return float(np.sqrt(np.mean(self.radius(theta) ** 2)))

    def reach(self) -> float:
        """Largest distance from the centre to the outline for R = 1."""
        theta = np.linspace(0, 2 * np.pi, 2048, endpoint=False)
        return float(self.radius(theta).max() * np.sqrt(self.stretch))


def random_blob(rng: np.random.Generator) -> Blob:
    """A random outline; harmonics 2 to 5 with decaying weights keep it smooth and star-shaped."""
    scale = rng.uniform(0.05, 0.3) / np.arange(2, 6) ** 1.2
    cos, sin = rng.normal(size=(2, 4)) * scale
    total = np.abs(cos).sum() + np.abs(sin).sum()
    shrink = min(1.0, 0.45 / total)  # keeps the radius above 0.55
    return Blob(cos * shrink, sin * shrink, float(rng.uniform(1.0, 2.0)), float(rng.uniform(0, np.pi)))


def blob_field(blob: Blob, diameter: float, centre: tuple[float, float]) -> tuple[FineGrid, np.ndarray]:
    """The opening of a blob of the given equivalent diameter: a field in [0, 1], >= 0.5 inside."""
    scale = diameter / 2 / blob.equivalent_radius()
    reach = scale * blob.reach()
    grid = grid_around(centre[0] - reach, centre[0] + reach, centre[1] - reach, centre[1] + reach)
    uu, vv = grid.mesh()
    c, s = np.cos(blob.angle), np.sin(blob.angle)
    along = ((uu - centre[0]) * c + (vv - centre[1]) * s) / np.sqrt(blob.stretch)
    across = (-(uu - centre[0]) * s + (vv - centre[1]) * c) * np.sqrt(blob.stretch)
    rho = np.hypot(along, across)
    edge = scale * blob.radius(np.arctan2(across, along))
    return grid, ramp(edge - rho, grid.step)


def ramp(signed_distance: np.ndarray, step: float) -> np.ndarray:
    """A field linear across the outline (0.5 on it), so its 0.5-contour is exact to sub-cell accuracy."""
    # Three cells wide: both neighbours of a crossing stay on the linear part, unclipped.
    return np.clip(0.5 + signed_distance / (3 * step), 0.0, 1.0)


def mask_on_surface(grid: FineGrid, surface: Surface, camera: Camera, mask: np.ndarray) -> np.ndarray:
    """Back-project a photo's wound mask (values in [0, 1]) onto S through the photo camera."""
    uu, vv = grid.mesh()
    pts, normal, _ = surface.frame(uu, vv)
    pix, z = camera.project(pts.reshape(-1, 3))
    centre = -camera.world_to_camera[:3, :3].T @ camera.world_to_camera[:3, 3]
    facing = np.einsum("ij,ij->i", centre - pts.reshape(-1, 3), normal.reshape(-1, 3)) > 0
    value = ndimage.map_coordinates(mask, [pix[:, 1], pix[:, 0]], order=1, mode="constant", cval=0.0)
    return np.where((z > 0) & facing, value, 0.0).reshape(grid.nv, grid.nu)


def photo_field(surface: Surface, camera: Camera, mask: np.ndarray,
                centre: tuple[float, float], search: float = 0.07) -> tuple[FineGrid, np.ndarray] | None:
    """The opening draped from a photo mask: a coarse pass finds its extent, then the fine grid (None: cut)."""
    u0, u1, v0, v1 = surface.bounds()
    box = (max(u0, centre[0] - search), min(u1, centre[0] + search),
           max(v0, centre[1] - search), min(v1, centre[1] + search))
    coarse = grid_around(*box, step=5e-4)
    field = mask_on_surface(coarse, surface, camera, mask)
    inside = field >= 0.5
    if not inside.any() or inside[[0, -1], :].any() or inside[:, [0, -1]].any():
        return None
    rows, cols = np.nonzero(inside)
    slack = coarse.step
    grid = grid_around(coarse.u0 + cols.min() * slack - slack, coarse.u0 + cols.max() * slack + slack,
                       coarse.v0 + rows.min() * slack - slack, coarse.v0 + rows.max() * slack + slack)
    return grid, mask_on_surface(grid, surface, camera, mask)


def opening_margin(surface: Surface, grid: FineGrid, field: np.ndarray) -> float:
    """Smallest distance from an opening cell to the domain's edge (a lower bound, metres)."""
    uu, vv = grid.mesh()
    inside = field >= 0.5
    return float(surface.margin(uu[inside], vv[inside]).min()) if inside.any() else -1.0


def fit_domain(surface: Surface, grid: FineGrid, field: np.ndarray, skin: float) -> Surface:
    """Cut the free directions of the domain to the opening's extent plus `skin` metres of intact skin."""
    uu, vv = grid.mesh()
    inside = field >= 0.5
    return surface.with_extent(float(np.abs(uu[inside]).max() + skin), float(np.abs(vv[inside]).max() + skin))


# ---------------------------------------------------------------------------------------------- depth


def outline_distance(inside: np.ndarray, step: float) -> np.ndarray:
    """Metric distance from each opening cell to the outline (0 outside)."""
    dist = ndimage.distance_transform_edt(inside, sampling=step)
    # The transform reaches the nearest outside cell centre; the outline lies about half a cell before it.
    return np.where(inside, np.maximum(dist - step / 2, 0.0), 0.0)


def equivalent_radius(surface: Surface, grid: FineGrid, inside: np.ndarray) -> float:
    """Radius of the disc whose area equals the opening's area on S."""
    uu, vv = grid.mesh()
    jac = surface.frame(uu[inside], vv[inside])[2]
    return float(np.sqrt(jac.sum() * grid.step**2 / np.pi))


def depth_profile(profile: str, dist: np.ndarray, depth: float, grid: FineGrid,
                  rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """d(u, v) with maximum `depth` from the distance to the outline; also the profile's own parameters."""
    t = dist / max(float(dist.max()), 1e-9)
    if profile == "bowl":
        return depth * t * (2 - t), {}
    if profile == "cone":
        return depth * t, {}
    if profile == "crater":
        wall = float(rng.uniform(0.5e-3, 2e-3))
        x = np.clip(dist / min(wall, float(dist.max())), 0.0, 1.0)
        return depth * x * x * (3 - 2 * x), {"wall_mm": round(wall * 1e3, 3)}
    if profile == "irregular":
        uu, vv = grid.mesh()
        waves = random_waves(rng, 5, 1.0, (0.004, 0.015))
        shaped = t * (2 - t) * np.clip(1.0 + 0.45 * waves.value(uu, vv), 0.3, None)
        return depth * shaped / max(float(shaped.max()), 1e-12), {}
    raise ValueError(f"unknown depth profile {profile!r}; choose one of {', '.join(PROFILES)}")


def bed_points(surface: Surface, grid: FineGrid, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """S and the bed B = S - d N on the grid, each (nv, nu, 3)."""
    skin, normal, _ = surface.frame(*grid.mesh())
    return skin, skin - depth[..., None] * normal
