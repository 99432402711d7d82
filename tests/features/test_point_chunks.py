"""Chunks of per-point features: nearest-neighbour patches, their frame, covering a scan, averaging predictions."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from features.io import Scan
from features.point_chunks import (
    augment_chunks,
    chunks_around,
    covering_chunks,
    normalise_chunks,
    predict_points,
    predict_scan,
    training_chunks,
)
from features.point_features import point_features
from tests.features.test_point_features import bowl_up


def red_predictor(chunks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A stand-in network: wound probability = the point's red channel; a second head from green."""
    red, green = chunks[..., 3:4], chunks[..., 4:5]
    return np.concatenate([1 - red, red], axis=-1), np.concatenate([green, 1 - green, 0 * green], axis=-1)


def test_chunks_are_the_nearest_points_and_small_clouds_repeat() -> None:
    rng = np.random.default_rng(0)
    points = rng.random((500, 3))
    index, dist = chunks_around(cKDTree(points), points[:3], 40)
    brute = np.argsort(np.linalg.norm(points[None, :, :] - points[:3, None, :], axis=2), axis=1)[:, :40]
    assert index.shape == dist.shape == (3, 40)
    assert all(set(index[i]) == set(brute[i]) for i in range(3))
    small, _ = chunks_around(cKDTree(points[:10]), points[:1], 25)
    assert small.shape == (1, 25) and set(small[0]) == set(range(10))


def test_normalised_chunk_frame(bowl: Scan) -> None:
    features = point_features(bowl, radii=(0.004,), towards=bowl_up())
    index, _ = chunks_around(cKDTree(bowl.points), bowl.points[:2], 600)
    raw = features[index]
    chunk = normalise_chunks(raw)
    xyz, normals = chunk[..., :3], chunk[..., 6:9]
    np.testing.assert_allclose(xyz.mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(xyz, axis=2).max(axis=1), 1, atol=1e-5)
    mean_normal = normals.mean(axis=1)
    np.testing.assert_allclose(mean_normal[:, :2], 0, atol=1e-5)
    assert (mean_normal[:, 2] > 0.9).all()
    # a rotation and a scale: pairwise distances keep their ratios
    raw_d = np.linalg.norm(raw[0, :50, None, :3] - raw[0, None, :50, :3], axis=2)
    new_d = np.linalg.norm(xyz[0, :50, None] - xyz[0, None, :50], axis=2)
    np.testing.assert_allclose(new_d * (raw_d.max() / new_d.max()), raw_d, atol=1e-6)
    np.testing.assert_array_equal(chunk[..., 3:6], raw[..., 3:6])


def test_augmented_chunks_keep_lengths_heights_and_colour_range(bowl: Scan) -> None:
    features = point_features(bowl, radii=(0.004,), towards=bowl_up())
    chunk = normalise_chunks(features[chunks_around(cKDTree(bowl.points), bowl.points[:4], 300)[0]])
    out = augment_chunks(chunk, np.random.default_rng(1))
    for block in (slice(0, 3), slice(6, 9)):
        np.testing.assert_allclose(np.linalg.norm(out[..., block], axis=2), np.linalg.norm(chunk[..., block], axis=2),
                                   atol=1e-5)
    np.testing.assert_array_equal(out[..., 2], chunk[..., 2])
    assert not np.allclose(out[..., 0], chunk[..., 0])
    assert out[..., 3:6].min() >= 0 and out[..., 3:6].max() <= 1


def test_training_chunks_favour_the_wound(bowl: Scan) -> None:
    tree = cKDTree(bowl.points)
    rng = np.random.default_rng(2)
    near = training_chunks(bowl.points, tree, bowl.label, 20, 200, rng, wound_share=1.0)
    anywhere = training_chunks(bowl.points, tree, bowl.label, 20, 200, rng, wound_share=0.0)
    assert near.shape == anywhere.shape == (20, 200)
    assert bowl.label[near].any(axis=1).all()
    assert bowl.label[near].mean() > 2 * bowl.label[anywhere].mean()


def test_covering_chunks_hold_every_point(bowl: Scan) -> None:
    index, weight = covering_chunks(bowl.points, cKDTree(bowl.points), 500)
    assert np.array_equal(np.unique(index), np.arange(len(bowl)))
    assert index.size < 4 * len(bowl)  # the cover does not repeat points wastefully
    assert (weight > 0).all() and (weight <= 1).all() and np.allclose(weight[:, 0], 1)


def test_predict_points_averages_back_to_each_points_value(bowl: Scan) -> None:
    features = point_features(bowl, radii=(0.004,), towards=bowl_up())
    wound, second = predict_points(features, bowl.points, red_predictor, n_points=300, batch_size=3)
    np.testing.assert_allclose(wound[:, 1], bowl.colors[:, 0] / 255.0, atol=1e-5)
    np.testing.assert_allclose(second[:, 0], bowl.colors[:, 1] / 255.0, atol=1e-5)
    assert wound.shape == (len(bowl), 2) and second.shape == (len(bowl), 3)


def test_predict_scan_returns_every_original_point(bowl: Scan) -> None:
    wound, second = predict_scan(bowl, red_predictor, voxel=0.0015, radii=(0.004,), n_points=256, batch_size=4)
    assert wound.shape == (len(bowl), 2) and second.shape == (len(bowl), 3)
    np.testing.assert_allclose(wound.sum(axis=1), 1, atol=1e-5)
    # colours are uniform inside and outside the bowl, so only points near the rim may blur
    red = bowl.colors[:, 0] / 255.0
    assert np.mean(np.abs(wound[:, 1] - red) < 0.01) > 0.9
