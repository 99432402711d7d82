"""Per-point network inputs of a scan: pure numpy-in, numpy-out; Open3D and SciPy stay inside.

Columns (`feature_names`): xyz centred on the scan (metres; chunks re-normalise them), colour in [0, 1],
unit normals oriented towards the sensor, and at each radius the height of the point above a plane fitted
to its neighbourhood (in units of that radius, along the normal: a wound bed is negative) and the surface
variation lambda_min / sum(lambda) of the neighbourhood (0 on a plane, larger on rims, walls and noise).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree
from scipy.stats import spearmanr

from features.io import Scan
from features.preprocess import voxel_reduce

DEFAULT_RADII = (0.004, 0.012)  # metres: the wound rim and bed at two scales
NORMAL_NEIGHBOURS = 16
GEOMETRY_NEIGHBOURS = 16
BASE_NAMES = ("x", "y", "z", "red", "green", "blue", "nx", "ny", "nz")
GREY = 0.5  # colour of scans that have none
DIRECTION_SAMPLE = 50_000  # points used to find the sensor side
OUTER_SHARE = 0.3  # the laterally outermost share of points, compared with the rest to find the sensor side


def feature_names(radii: tuple[float, ...] = DEFAULT_RADII) -> tuple[str, ...]:
    """Names of the columns `point_features` returns for these radii."""
    per_radius = [(f"height_{r * 1e3:g}mm", f"variation_{r * 1e3:g}mm") for r in radii]
    return BASE_NAMES + tuple(name for pair in per_radius for name in pair)


def estimate_normals(points: np.ndarray, neighbours: int = NORMAL_NEIGHBOURS) -> np.ndarray:
    """(N, 3) unit normals from Open3D's k-nearest-neighbour plane fits, sign arbitrary."""
    import open3d as o3d

    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.ascontiguousarray(points, dtype=np.float64)))
    cloud.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(min(neighbours, len(points))))
    return np.asarray(cloud.normals)


def normal_axis(normals: np.ndarray) -> np.ndarray:
    """The dominant direction of the normals, sign arbitrary: principal eigenvector of sum n n^T."""
    return np.linalg.eigh(normals.T @ normals)[1][:, -1]


def sensor_direction(points: np.ndarray, sample: int = DIRECTION_SAMPLE, seed: int = 0) -> np.ndarray:
    """Unit vector from the scan towards the device that captured it (give the scan before any reduction).

    The axis is the dominant normal direction of a random sample of the points (`normal_axis`). Its sign
    is a vote of three cues of a depth camera's view: points nearer the device are denser; the far side of
    the view frustum is wider; the surface falls away towards its lateral edges (limbs and heels curve
    away, a couch or wall lies behind the skin). On 64 phantoms of every shape and sensor each cue alone,
    and so the vote, found the device's side every time.
    """
    rng = np.random.default_rng(seed)
    sub = points[rng.choice(len(points), size=min(sample, len(points)), replace=False)]
    axis = normal_axis(estimate_normals(sub))
    offset = sub - np.median(sub, axis=0)
    along = offset @ axis  # (S,): height towards +axis
    lateral = np.sqrt(np.maximum(np.einsum("ij,ij->i", offset, offset) - along**2, 0.0))
    votes = (_density_vote(points, sub, along), _frustum_vote(along, lateral), _falloff_vote(along, lateral))
    return axis if sum(votes) > 0 else -axis


def _density_vote(points: np.ndarray, sub: np.ndarray, along: np.ndarray, probes: int = 5000) -> float:
    """+1 when the spacing between points shrinks towards +axis (the device is there)."""
    spacing = cKDTree(points).query(sub[:probes], k=2, workers=-1)[0][:, 1]
    return -float(np.sign(spearmanr(along[:probes], spacing)[0]))


def _frustum_vote(along: np.ndarray, lateral: np.ndarray) -> float:
    """+1 when the deepest tenth of the points (towards -axis) spreads wider than the shallowest tenth."""
    low, high = np.quantile(along, [0.1, 0.9])
    return float(np.sign(np.quantile(lateral[along < low], 0.9) - np.quantile(lateral[along > high], 0.9)))


def _falloff_vote(along: np.ndarray, lateral: np.ndarray) -> float:
    """+1 when the laterally outer points lie deeper (towards -axis) than the inner ones."""
    outer = lateral > np.quantile(lateral, 1 - OUTER_SHARE)
    return -float(np.sign(along[outer].mean() - along[~outer].mean()))


def orient_normals(normals: np.ndarray, towards: np.ndarray) -> np.ndarray:
    """Flip each normal to the side of the `towards` direction (unit vectors in, unit vectors out)."""
    sign = np.where(normals @ towards < 0, -1.0, 1.0)
    return normals * sign[:, None]


def voxel_cells(points: np.ndarray, size: float) -> tuple[np.ndarray, np.ndarray]:
    """Cell of each point (N,) on a grid of `size`, and the mean position of each occupied cell (M, 3)."""
    cells = np.floor((points - points.min(axis=0)) / size).astype(np.int64)  # (N, 3)
    dims = cells.max(axis=0) + 1
    keys = (cells[:, 0] * dims[1] + cells[:, 1]) * dims[2] + cells[:, 2]
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    centres = np.stack([np.bincount(inverse, points[:, j]) for j in range(3)], axis=1) / counts[:, None]
    return inverse, centres


def local_geometry(points: np.ndarray, normals: np.ndarray, radius: float,
                   neighbours: int = GEOMETRY_NEIGHBOURS) -> np.ndarray:
    """(N, 2): height above the local plane fit (in units of `radius`) and surface variation.

    Planes are fitted once per radius/2 grid cell, to the cell means within `radius` (averaging cells
    tames range noise; fitting per cell, not per point, keeps the cost independent of density); each
    point then takes its height above its cell's plane.
    """
    inverse, centres = voxel_cells(points, radius / 2)
    k = min(neighbours, len(centres))
    dist, index = cKDTree(centres).query(centres, k=k, workers=-1)
    dist, index = dist.reshape(len(centres), k), index.reshape(len(centres), k)  # k == 1 drops an axis
    weight = (dist <= radius).astype(np.float64)  # (M, k); the cell itself is at distance 0
    near = centres[index]  # (M, k, 3)
    total = weight.sum(axis=1)[:, None]  # (M, 1)
    mean = np.einsum("mk,mkj->mj", weight, near) / total  # (M, 3)
    centred = near - mean[:, None, :]
    cov = np.matmul((centred * weight[..., None]).transpose(0, 2, 1), centred) / total[..., None]  # (M, 3, 3)
    eigval, eigvec = np.linalg.eigh(cov)
    plane_normal = eigvec[:, :, 0][inverse]  # (N, 3): smallest-eigenvalue direction of each point's cell
    plane_normal *= np.where(np.einsum("ij,ij->i", plane_normal, normals) < 0, -1.0, 1.0)[:, None]
    height = np.einsum("ij,ij->i", points - mean[inverse], plane_normal) / radius
    variation = eigval[:, 0] / np.maximum(eigval.sum(axis=1), 1e-18)
    return np.column_stack([height, variation[inverse]])


def unit_normals(scan: Scan) -> np.ndarray:
    """The scan's own normals, or Open3D's estimate when it has none; unit length, sign arbitrary."""
    normals = estimate_normals(scan.points) if scan.normals is None else scan.normals.astype(np.float64)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


def point_features(scan: Scan, radii: tuple[float, ...] = DEFAULT_RADII,
                   towards: np.ndarray | None = None) -> np.ndarray:
    """(N, 9 + 2 len(radii)) float32 network inputs, columns as in `feature_names(radii)`.

    Normals are the scan's own or Open3D's, turned to `towards` (default: this scan's sensor side).
    """
    points = scan.points
    normals = unit_normals(scan)
    normals = orient_normals(normals, sensor_direction(points) if towards is None else towards)
    colours = np.full((len(points), 3), GREY) if scan.colors is None else scan.colors / 255.0
    geometry = [local_geometry(points, normals, r) for r in radii]
    return np.column_stack([points - points.mean(axis=0), colours, normals, *geometry]).astype(np.float32)


def scan_inputs(scan: Scan, voxel: float, radii: tuple[float, ...] = DEFAULT_RADII) -> tuple[Scan, np.ndarray]:
    """The scan as the network sees it (voxel-reduced when voxel > 0; normals dropped) and its features.

    The sensor side is voted on the full scan, whose density still shows which side was nearer.
    """
    towards = sensor_direction(scan.points)
    reduced = voxel_reduce(scan, voxel) if voxel > 0 else scan
    return reduced, point_features(reduced, radii, towards)
