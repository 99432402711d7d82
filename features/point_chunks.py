"""Fixed-size chunks of a scan's per-point features, for training and for predicting whole scans.

A chunk is the `n_points` nearest neighbours of a location: a patch of surface at the scan's own density.
`normalise_chunks` puts each chunk in its own frame (centred, mean normal along +z, inside the unit
sphere), so a network sees every chunk the same way whatever the scan's pose. Pure numpy in and out.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.spatial import cKDTree

from features.io import Scan
from features.point_features import DEFAULT_RADII, scan_inputs
from features.preprocess import point_spacing

XYZ, NORMALS, RGB = slice(0, 3), slice(6, 9), slice(3, 6)  # column blocks of features.point_features
COVER_CORE = 0.75  # every point is among the nearest three quarters of some covering chunk

# A predictor maps a (B, n, C) float32 batch of normalised chunks to per-point probabilities, one
# (B, n, K) array per head.
Predictor = Callable[[np.ndarray], tuple[np.ndarray, ...]]


def patch_radius(points: np.ndarray, n_points: int) -> float:
    """Approximate radius of a chunk of `n_points` on this (surface-like) cloud."""
    return point_spacing(points) * float(np.sqrt(n_points / np.pi))


def chunks_around(tree: cKDTree, locations: np.ndarray, n_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (M, n) of the n nearest points of each location (M, 3), and their distances (M, n).

    A cloud smaller than a chunk is repeated to fill it.
    """
    k = min(n_points, tree.n)
    dist, index = tree.query(locations, k=k, workers=-1)
    dist, index = dist.reshape(len(locations), k), index.reshape(len(locations), k)  # k == 1 drops an axis
    if k < n_points:
        fill = np.resize(np.arange(k), n_points)
        dist, index = dist[:, fill], index[:, fill]
    return index, dist


def _frames(normals: np.ndarray) -> np.ndarray:
    """(M, 3, 3) rotations whose third row is the mean normal of each chunk (M, n, 3)."""
    up = normals.mean(axis=1)  # (M, 3)
    length = np.linalg.norm(up, axis=1, keepdims=True)
    up = np.where(length > 1e-6, up / np.maximum(length, 1e-12), [0.0, 0.0, 1.0])
    helper = np.where(np.abs(up[:, :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]])
    east = np.cross(up, helper)
    east /= np.linalg.norm(east, axis=1, keepdims=True)
    return np.stack([east, np.cross(up, east), up], axis=1)


def normalise_chunks(chunks: np.ndarray) -> np.ndarray:
    """(M, n, C) raw chunk features -> the same with xyz and normals in each chunk's own frame.

    xyz is centred on the chunk's centroid, rotated so the mean normal is +z (a wound bed has negative z)
    and scaled into the unit sphere; normals are rotated alike; other columns are unchanged.
    """
    out = chunks.astype(np.float32, copy=True)
    rotation = _frames(chunks[..., NORMALS].astype(np.float64))  # (M, 3, 3)
    centred = chunks[..., XYZ] - chunks[..., XYZ].mean(axis=1, keepdims=True)
    local = np.matmul(centred, rotation.transpose(0, 2, 1))  # (M, n, 3)
    scale = np.maximum(np.linalg.norm(local, axis=2).max(axis=1), 1e-9)  # (M,)
    out[..., XYZ] = local / scale[:, None, None]
    out[..., NORMALS] = np.matmul(chunks[..., NORMALS], rotation.transpose(0, 2, 1))
    return out


def augment_chunks(chunks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Normalised chunks (M, n, C) turned about z, mirrored half the time, with colour jitter."""
    m = len(chunks)
    out = chunks.copy()
    angle = rng.uniform(0, 2 * np.pi, m)
    cos, sin = np.cos(angle)[:, None], np.sin(angle)[:, None]
    mirror = np.where(rng.random(m) < 0.5, -1.0, 1.0)[:, None]
    for block in (XYZ, NORMALS):
        x, y = chunks[..., block][..., 0] * mirror, chunks[..., block][..., 1]
        out[..., block.start] = cos * x - sin * y
        out[..., block.start + 1] = sin * x + cos * y
    gain = rng.uniform(0.85, 1.15, (m, 1, 1)) * rng.uniform(0.95, 1.05, (m, 1, 3))
    out[..., RGB] = np.clip(chunks[..., RGB] * gain + rng.normal(0, 0.01, out[..., RGB].shape), 0, 1)
    return out


def training_chunks(points: np.ndarray, tree: cKDTree, label: np.ndarray, n_chunks: int, n_points: int,
                    rng: np.random.Generator, wound_share: float = 0.5, radius: float | None = None) -> np.ndarray:
    """Indices (n_chunks, n_points) of random chunks, about `wound_share` of them near wound points.

    A wound chunk is centred a random offset (about a third of a patch radius) from a random wound point,
    so the wound is not always in the middle; the rest are centred on uniformly random points.
    """
    radius = patch_radius(points, n_points) if radius is None else radius
    wound = np.flatnonzero(label)
    n_wound = int(rng.binomial(n_chunks, wound_share)) if len(wound) else 0
    near = points[rng.choice(wound, n_wound)] + rng.normal(0, radius / 3, (n_wound, 3)) if n_wound else points[:0]
    anywhere = points[rng.integers(0, len(points), n_chunks - n_wound)]
    return chunks_around(tree, np.concatenate([near, anywhere]), n_points)[0]


def covering_chunks(points: np.ndarray, tree: cKDTree, n_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Chunks (M, n) that together hold every point, and each point's weight in its chunk (M, n).

    Greedy: the next chunk is centred on the point farthest from all earlier centres among the points not
    yet in the core (the nearest COVER_CORE share) of a chunk, so every point gets some context whatever
    the local density. The weight falls from 1 at a chunk's centre to 0.05 at its edge.
    """
    core = max(int(COVER_CORE * min(n_points, len(points))), 1)
    covered = np.zeros(len(points), bool)
    nearest = np.full(len(points), np.inf)
    index, dist, centre = [], [], 0
    while True:
        i, d = chunks_around(tree, points[centre:centre + 1], n_points)
        index.append(i)
        dist.append(d)
        covered[i[0, :core]] = True
        offset = points - points[centre]
        np.minimum(nearest, np.einsum("ij,ij->i", offset, offset), out=nearest)
        if covered.all():
            break
        centre = int(np.where(covered, -1.0, nearest).argmax())
    index, dist = np.concatenate(index), np.concatenate(dist)
    weight = 1.0 - 0.95 * (dist / np.maximum(dist[:, -1:], 1e-12)) ** 2
    return index, weight


def predict_points(features: np.ndarray, points: np.ndarray, predict: Predictor, n_points: int = 4096,
                   batch_size: int = 8) -> tuple[np.ndarray, ...]:
    """Per-point probabilities (N, K) for each head: covering chunks, weighted average where they overlap."""
    index, weight = covering_chunks(points, cKDTree(points), n_points)
    sums: list[np.ndarray] = []
    for start in range(0, len(index), batch_size):
        idx, w = index[start:start + batch_size], weight[start:start + batch_size]
        heads = predict(normalise_chunks(features[idx]))
        if not sums:
            sums = [np.zeros((len(points), h.shape[-1])) for h in heads]
        for total, probs in zip(sums, heads, strict=True):
            flat = (probs * w[..., None]).reshape(-1, probs.shape[-1])  # (b n, K)
            for k in range(probs.shape[-1]):
                total[:, k] += np.bincount(idx.ravel(), flat[:, k], minlength=len(points))
    return tuple((s / s.sum(axis=1, keepdims=True)).astype(np.float32) for s in sums)


def predict_scan(scan: Scan, predict: Predictor, voxel: float = 0.001, radii: tuple[float, ...] = DEFAULT_RADII,
                 n_points: int = 4096, batch_size: int = 8) -> tuple[np.ndarray, ...]:
    """Per-point probabilities (N, K) for each head for every point of the scan.

    The network sees the scan voxel-reduced as in training; each original point takes the
    inverse-distance average of its three nearest reduced points.
    """
    reduced, features = scan_inputs(scan, voxel, radii)
    heads = predict_points(features, reduced.points, predict, n_points, batch_size)
    if reduced is scan:
        return heads
    k = min(3, len(reduced))
    dist, index = cKDTree(reduced.points).query(scan.points, k=k, workers=-1)
    dist, index = dist.reshape(len(scan), k), index.reshape(len(scan), k)
    weight = 1.0 / (dist + 1e-6 * voxel)
    weight /= weight.sum(axis=1, keepdims=True)
    return tuple(np.einsum("nk,nkc->nc", weight, h[index]).astype(np.float32) for h in heads)
