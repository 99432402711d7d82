"""Which points of a scan a photo saw, and what a per-pixel map of that photo says at each of them.

Pure numpy; used by the segmentation fusion (models.fusion_segmentation). Pixel convention as in
docs/scan-format.md and features.io.Camera: integer coordinates are pixel centres, so the image covers
x in [-0.5, width - 0.5) and y in [-0.5, height - 0.5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import ndimage

from features.io import Camera

MIN_DEPTH_M = 1e-3  # a point closer than this to the camera's plane counts as behind it (no stable projection)
MAD_TO_SIGMA = 1.4826  # median absolute deviation -> standard deviation, for Gaussian noise
NOISE_BINS = 8  # depth ranges over which the range noise is estimated separately (it grows with depth)
MIN_NOISE_SAMPLES = 30  # fewer points in multi-point cells than this: no noise estimate, tolerance_m alone


@dataclass(frozen=True)
class Occlusion:
    """The z-buffer's settings: cell size and what counts as a clearly nearer surface.

    A point is hidden when, within two cells, the surface is nearer the camera by more than
    tolerance_m + noise_sigmas * sigma(depth) + max_slope * (the neighbourhood's width in metres):
    sigma is the scan's own range noise at that depth, and a surface seen at a slant up to max_slope
    (depth change per lateral distance) must not hide itself.
    """

    cell_px: float = 2.0
    tolerance_m: float = 0.002
    noise_sigmas: float = 3.0
    max_slope: float = 3.0

    def __post_init__(self) -> None:
        values = {"cell_px": self.cell_px, "tolerance_m": self.tolerance_m, "noise_sigmas": self.noise_sigmas,
                  "max_slope": self.max_slope}
        bad = [k for k, v in values.items() if not (isinstance(v, int | float) and np.isfinite(v) and v >= 0)]
        if bad or self.cell_px < 1:
            raise ValueError(f"Occlusion: {', '.join(bad) or 'cell_px'} must be finite and >= 0 "
                             f"(cell_px >= 1 pixel), got {values}")


class Projection(NamedTuple):
    """Where each point lands in the photo."""

    pixels: np.ndarray  # (N, 2) x (column), y (row); NaN for points behind the camera
    depth: np.ndarray  # (N,) camera-frame Z, metres
    visible: np.ndarray  # (N,) bool: inside the image, in front of the camera and not occluded


def project_points(points: np.ndarray, camera: Camera, occlusion: Occlusion | None = None) -> Projection:
    """Pixel coordinates, depth and visibility of world points (N, 3) in the camera's image."""
    occlusion = occlusion or Occlusion()
    points = np.asarray(points, dtype=float)
    if points.ndim != 2 or points.shape[1] != 3 or not np.isfinite(points).all():
        raise ValueError(f"points must be a finite (N, 3) array, got shape {points.shape}")
    pixels, depth = camera.project(points)
    in_front = depth > MIN_DEPTH_M
    pixels[~in_front] = np.nan
    visible = np.zeros(len(points), dtype=bool)
    candidates = np.flatnonzero(in_front & _inside(pixels, camera.width, camera.height))
    visible[candidates] = _unoccluded(pixels[candidates], depth[candidates], camera, occlusion)
    return Projection(pixels, depth, visible)


def _inside(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    with np.errstate(invalid="ignore"):  # NaN compares False: it is outside
        return (pixels >= -0.5).all(axis=1) & (pixels[:, 0] < width - 0.5) & (pixels[:, 1] < height - 0.5)


def _unoccluded(pixels: np.ndarray, depth: np.ndarray, camera: Camera, occlusion: Occlusion) -> np.ndarray:
    """Which in-image points lie on the nearest surface of their neighbourhood (a coarse z-buffer).

    Points sample the surface more sparsely than a photo's pixels, so a hidden point often shares its
    own pixel with no point of the surface in front: cells of cell_px pixels, and the nearest of each
    cell's 3x3 neighbours, close those holes. Each cell stands for its median depth, so that one flying
    pixel or the low tail of range noise does not pull the surface towards the camera.
    """
    cell = occlusion.cell_px
    cols, rows = int(np.ceil(camera.width / cell)), int(np.ceil(camera.height / cell))
    col = np.clip(((pixels[:, 0] + 0.5) / cell).astype(np.int64), 0, cols - 1)
    row = np.clip(((pixels[:, 1] + 0.5) / cell).astype(np.int64), 0, rows - 1)
    index = row * cols + col
    medians, counts = _cell_medians(index, depth, rows * cols)
    front = ndimage.minimum_filter(medians.reshape(rows, cols), size=3, mode="constant", cval=np.inf).ravel()[index]
    sigma = np.interp(front, *_range_noise(depth, depth - medians[index], counts[index] >= 3))
    reach = 2 * cell * front / (0.5 * (camera.fx + camera.fy))  # the neighbourhood's half-width, metres
    tolerance = occlusion.tolerance_m + occlusion.noise_sigmas * sigma + occlusion.max_slope * reach
    return depth <= front + tolerance


def _cell_medians(index: np.ndarray, depth: np.ndarray, n_cells: int) -> tuple[np.ndarray, np.ndarray]:
    """Median depth (inf where empty) and number of points of each cell."""
    order = np.lexsort((depth, index))
    counts = np.bincount(index, minlength=n_cells)
    starts = np.cumsum(counts) - counts
    medians = np.full(n_cells, np.inf)
    occupied = counts > 0
    medians[occupied] = depth[order][starts[occupied] + (counts[occupied] - 1) // 2]
    return medians, counts


def _range_noise(depth: np.ndarray, deviation: np.ndarray, usable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Range noise sigma against depth, as (depths, sigmas) to interpolate in: per depth range, the robust
    spread of the depths of points in cells of three or more about their cell's median.

    Cells that straddle a silhouette spread far more, but they are few, and the median ignores them.
    """
    depth, deviation = depth[usable], np.abs(deviation[usable])
    if len(depth) < MIN_NOISE_SAMPLES:
        return np.zeros(1), np.zeros(1)
    edges = np.quantile(depth, np.linspace(0.0, 1.0, NOISE_BINS + 1))
    which = np.clip(np.searchsorted(edges, depth, side="right") - 1, 0, NOISE_BINS - 1)
    centres, sigmas = [], []
    for b in range(NOISE_BINS):  # a handful of depth ranges, not a loop over points
        chosen = which == b
        if chosen.any():
            centres.append(float(np.median(depth[chosen])))
            sigmas.append(MAD_TO_SIGMA * float(np.median(deviation[chosen])))
    return np.array(centres), np.array(sigmas)


def sample_photo_probability(prob_map: np.ndarray, pixels: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """Bilinear samples (N,) of an (H, W) probability map at the visible points' pixels; NaN elsewhere."""
    prob_map = probability_map(prob_map)
    pixels, visible = np.asarray(pixels, dtype=float), np.asarray(visible)
    if pixels.ndim != 2 or pixels.shape[1] != 2 or visible.shape != (len(pixels),) or visible.dtype != bool:
        raise ValueError(f"pixels must be (N, 2) and visible an (N,) bool mask, got {pixels.shape} and "
                         f"{visible.shape} {visible.dtype}")
    xy = pixels[visible]
    height, width = prob_map.shape
    outside = ~_inside(xy, width, height)
    if outside.any():
        raise ValueError(f"{int(outside.sum())} visible point(s) fall outside the {width}x{height} map "
                         "(was the map made for another camera?)")
    out = np.full(len(pixels), np.nan)
    # within half a pixel of the border there is no neighbour to interpolate with: the edge value holds
    sampled = ndimage.map_coordinates(prob_map, [xy[:, 1], xy[:, 0]], order=1, mode="nearest")
    out[visible] = np.clip(sampled, 0.0, 1.0)
    return out


def probability_map(prob_map: np.ndarray) -> np.ndarray:
    """The map as float, or ValueError unless it is 2-D with finite values in [0, 1]."""
    prob_map = np.asarray(prob_map, dtype=float)
    if prob_map.ndim != 2:
        raise ValueError(f"the photo probability map must be 2-D (H, W), got shape {prob_map.shape}")
    if not np.isfinite(prob_map).all() or prob_map.min() < 0 or prob_map.max() > 1:
        raise ValueError("the photo probability map must hold finite values in [0, 1]")
    return prob_map
