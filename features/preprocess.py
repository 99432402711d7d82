"""Point-cloud preprocessing: pure numpy-in, numpy-out functions; Open3D stays inside them."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from features.io import Scan


def _o3d_cloud(points: np.ndarray):
    import open3d as o3d

    return o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.ascontiguousarray(points, dtype=np.float64)))


def point_spacing(points: np.ndarray, sample: int = 4000, seed: int = 0) -> float:
    """Median nearest-neighbour distance (metres), from a random sample queried against the whole cloud."""
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(points), size=min(sample, len(points)), replace=False)
    tree = cKDTree(points, balanced_tree=False, compact_nodes=False)
    dist, _ = tree.query(points[pick], k=2, workers=-1)
    return float(np.median(dist[:, 1]))


CROP_CELLS = 8  # cells per margin in crop_around's first pass
MAX_CROP_CELLS = 1_000_000


def crop_around(scan: Scan, centre_mask: np.ndarray, margin: float, sample: int = 4000) -> Scan:
    """The points within `margin` (metres) of `centre_mask`'s points (of an even subsample of them).

    A box test first discards most of a large scan cheaply; the distance test keeps the result
    independent of how the scan is posed. The distance is first asked of cells, not points: a point lies
    within half a cell diagonal of its cell's centre, so a cell whose centre is that much inside (or
    outside) the margin settles all its points at once, and only points in cells astride it are asked.
    """
    centre = scan.points[centre_mask]
    anchors = cKDTree(centre[:: max(1, len(centre) // sample)])
    lo, hi = centre.min(axis=0) - margin, centre.max(axis=0) + margin
    boxed = np.flatnonzero(np.all((scan.points >= lo) & (scan.points <= hi), axis=1))
    points = scan.points[boxed]
    # cells of an eighth of the margin, larger where that many would not fit in memory
    cell = max(margin / CROP_CELLS, float(np.prod(hi - lo) / MAX_CROP_CELLS) ** (1 / 3))
    flat, dims = _packed(((points - lo) / cell).astype(np.int64))
    cells = np.stack(np.unravel_index(np.arange(int(np.prod(dims))), tuple(dims)), axis=1)
    half = cell * np.sqrt(3) / 2
    cell_dist = anchors.query(lo + (cells + 0.5) * cell, distance_upper_bound=margin + half, workers=-1)[0]
    near = cell_dist[flat] <= margin - half
    unsure = np.flatnonzero(~near & (cell_dist[flat] <= margin + half))
    near[unsure] = np.isfinite(anchors.query(points[unsure], distance_upper_bound=margin, workers=-1)[0])
    kept = boxed[near]
    return scan if len(kept) == len(scan) else scan.subset(kept)


def _packed(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative integer cell coordinates (N, 3) as one int64 key each, and the grid's dimensions (3,)."""
    dims = cells.max(axis=0) + 1 if len(cells) else np.ones(3, np.int64)
    return (cells[:, 0] * dims[1] + cells[:, 1]) * dims[2] + cells[:, 2], dims


def _voxel_keys(points: np.ndarray, voxel: float) -> np.ndarray:
    return _packed(np.floor((points - points.min(axis=0)) / voxel).astype(np.int64))[0]


def voxel_for(points: np.ndarray, target: int, spacing: float) -> float:
    """Voxel edge that leaves about `target` points of a surface scan with this point spacing.

    spacing * sqrt(N / target) would, if the surface lay in a voxel plane; a tilted or curved surface
    crosses up to about 1.7 times as many cells per unit area, so one trial count corrects the edge.
    """
    voxel = spacing * np.sqrt(len(points) / target)
    cells = len(pd.unique(_voxel_keys(points, voxel)))  # hashing: several times faster than a sort here
    return voxel * float(np.sqrt(max(cells / target, 1.0)))


def voxel_reduce(scan: Scan, voxel: float) -> Scan:
    """Average the scan over a voxel grid; `label` becomes the wound majority, `tissue` the majority class.

    Open3D's voxel_down_sample averages positions and colours but drops per-point classes, which the
    measurement needs; one sort-based pass here carries every attribute.
    """
    # cells numbered in order of first appearance by hashing, which is faster than np.unique's sort
    inverse, _ = pd.factorize(_voxel_keys(scan.points, voxel))
    counts = np.bincount(inverse)
    m = len(counts)

    def mean(values: np.ndarray) -> np.ndarray:
        sums = np.stack([np.bincount(inverse, values[:, j], minlength=m) for j in range(values.shape[1])], 1)
        return sums / counts[:, None]

    reduced = Scan(mean(scan.points))
    if scan.colors is not None:
        reduced.colors = np.round(mean(scan.colors.astype(np.float64))).astype(np.uint8)
    if scan.label is not None:
        reduced.label = (np.bincount(inverse, scan.label.astype(np.float64), minlength=m) / counts >= 0.5)
        reduced.label = reduced.label.astype(np.uint8)
    if scan.tissue is not None:
        votes = np.zeros((m, 5))
        np.add.at(votes, (inverse, scan.tissue.astype(np.int64)), 1.0)
        reduced.tissue = votes.argmax(axis=1).astype(np.uint8)
    return reduced


def statistical_inliers(points: np.ndarray, neighbours: int = 16, std_ratio: float = 3.0) -> np.ndarray:
    """Boolean mask of points kept by Open3D's statistical outlier removal."""
    _, kept = _o3d_cloud(points).remove_statistical_outlier(nb_neighbors=neighbours, std_ratio=std_ratio)
    mask = np.zeros(len(points), dtype=bool)
    mask[np.asarray(kept, dtype=np.int64)] = True
    return mask


def downsample_and_normals(points: np.ndarray, voxel: float) -> tuple[np.ndarray, np.ndarray]:
    """Open3D voxel downsample then normal estimation: the reference floor the benchmarks compare with."""
    import open3d as o3d

    cloud = _o3d_cloud(points).voxel_down_sample(voxel)
    cloud.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=4 * voxel, max_nn=30))
    return np.asarray(cloud.points), np.asarray(cloud.normals)
