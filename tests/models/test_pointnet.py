"""PointNet++ segmenter: shapes, bad arguments, sampling and neighbour search against brute force, and a
fast_dev_run of its LightningModule on tiny phantoms."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from features.io import read_scan, write_ply
from features.phantoms import PhantomConfig, write_phantoms
from features.preprocess import voxel_reduce
from models.data.points import IGNORE, split_scans, tissue_targets
from models.lit.points import (
    PointSegmenter,
    PointTrainParams,
    confusion,
    evaluate_point_segmenter,
    iou_per_class,
    scan_slices,
    slice_ious,
    tissue_miou,
)
from models.lit.trainer import trainer_kwargs
from models.pointnet import (
    PointNetConfig,
    PointNetSegmenter,
    ball_query,
    farthest_point_sample,
    squared_distances,
    three_nn_weights,
)

TINY = {"strides": (4, 4), "radii": (0.2, 0.4), "neighbours": (8, 8), "sa_channels": ((16, 16), (16, 32)),
        "fp_channels": ((32,), (16,)), "head_channels": 16}


def cloud(batch: int, n: int, seed: int = 0) -> torch.Tensor:
    """Random points in the unit cube, flattened along z like a patch of skin."""
    xyz = torch.rand(batch, n, 3, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    return xyz * torch.tensor([1.0, 1.0, 0.2])


# ---------------------------------------------------------------------------------------------- network


@pytest.mark.parametrize("config", [PointNetConfig(), PointNetConfig(in_channels=7, **TINY)])
def test_output_shapes_and_every_parameter_learns(config: PointNetConfig) -> None:
    torch.manual_seed(0)
    net = PointNetSegmenter(config)
    x = torch.cat([cloud(2, 512), torch.randn(2, 512, config.in_channels - 3)], dim=-1)
    wound, tissue = net(x)
    assert wound.shape == (2, 512, 2) and tissue.shape == (2, 512, 5)
    (wound.logsumexp(-1).mean() + tissue.logsumexp(-1).mean()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_points_fewer_than_a_level_still_work() -> None:
    net = PointNetSegmenter(PointNetConfig(in_channels=5, **TINY)).eval()
    wound, tissue = net(torch.cat([cloud(1, 6), torch.zeros(1, 6, 2)], dim=-1))
    assert wound.shape == (1, 6, 2) and torch.isfinite(tissue).all()


@pytest.mark.parametrize("bad", [
    {"strides": (4, 4)},  # lengths differ from radii, neighbours, channels
    {"strides": ()},
    {"strides": (1, 4, 4)},
    {"radii": (0.1, 0.0, 0.4)},
    {"neighbours": (32, 0, 32)},
    {"sa_channels": ((32, 32, 64), (), (128, 256))},
    {"fp_channels": ((256, -1), (256, 128), (128, 128))},
    {"in_channels": 2},
    {"dropout": 1.0},
    {"tissue_classes": 0},
])
def test_bad_config_raises(bad: dict) -> None:
    with pytest.raises(ValueError):
        PointNetConfig(**bad)


def test_wrong_input_width_raises() -> None:
    with pytest.raises(ValueError, match="13"):
        PointNetSegmenter()(torch.zeros(1, 64, 12))


def test_config_from_params_lists() -> None:
    config = PointNetConfig.from_dict({"strides": [4, 4], "radii": [0.2, 0.4], "neighbours": [8, 8],
                                       "sa_channels": [[16], [32]], "fp_channels": [[32], [16]]})
    assert config.sa_channels == ((16,), (32,)) and config.strides == (4, 4)


# ---------------------------------------------------------------------------------------------- geometry


def reference_fps(xyz: np.ndarray, n: int) -> list[int]:
    chosen, nearest = [0], np.full(len(xyz), np.inf)
    for _ in range(n - 1):
        nearest = np.minimum(nearest, ((xyz - xyz[chosen[-1]]) ** 2).sum(1))
        chosen.append(int(nearest.argmax()))
    return chosen


def covering_radius(xyz: np.ndarray, picked: np.ndarray) -> float:
    return float(np.sqrt(((xyz[:, None] - xyz[picked][None]) ** 2).sum(-1).min(1).max()))


def test_fps_matches_reference_and_covers_better_than_random() -> None:
    xyz = cloud(3, 600, seed=1)
    picked = farthest_point_sample(xyz, 64)
    rng = np.random.default_rng(0)
    for b in range(3):
        points = xyz[b].numpy().astype(np.float64)
        assert picked[b].tolist() == reference_fps(points, 64)
        assert len(set(picked[b].tolist())) == 64
        random_radius = np.median([covering_radius(points, rng.choice(600, 64, replace=False)) for _ in range(5)])
        assert covering_radius(points, picked[b].numpy()) < random_radius


def test_fps_of_a_prefix_is_the_prefix() -> None:
    """What the network relies on: sampling the first level's centroids again gives their own prefix."""
    xyz = cloud(2, 800, seed=2)
    first = farthest_point_sample(xyz, 200)
    level1 = torch.stack([xyz[b, first[b]] for b in range(2)])
    assert torch.equal(farthest_point_sample(level1, 50), torch.arange(50).expand(2, 50))


def test_squared_distances_stay_float32_under_autocast() -> None:
    a, b = cloud(2, 40, seed=3), cloud(2, 70, seed=4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        d = squared_distances(a, b)
    assert d.dtype == torch.float32
    torch.testing.assert_close(d, torch.cdist(a, b) ** 2, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("block", [1 << 21, 1000])  # one distance block, or many (1000 entries: 1 row per block)
def test_ball_query_matches_brute_force(block: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("models.pointnet.DISTANCE_BLOCK", block)
    xyz = cloud(2, 300, seed=5)
    centres = xyz[:, :40]
    radius, k = 0.25, 12
    got = ball_query(centres, xyz, radius, k)
    for b in range(2):
        dist = torch.cdist(centres[b], xyz[b])  # (S, N)
        for s in range(40):
            order = dist[s].argsort()
            inside = [int(i) for i in order[:k] if dist[s, i] <= radius]
            assert set(got[b, s].tolist()) == set(inside)
            padded = got[b, s, len(inside):]
            assert (padded == order[0]).all()


@pytest.mark.parametrize("block", [1 << 21, 150])
def test_three_nn_matches_brute_force(block: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("models.pointnet.DISTANCE_BLOCK", block)
    fine, coarse = cloud(2, 200, seed=6), cloud(2, 30, seed=7)
    index, weight = three_nn_weights(fine, coarse)
    expected = torch.cdist(fine, coarse).argsort(-1)[..., :3]
    assert torch.equal(index.sort(-1).values, expected.sort(-1).values)
    torch.testing.assert_close(weight.sum(-1), torch.ones(2, 200))
    assert (weight > 0).all()


# ---------------------------------------------------------------------------------------------- metrics


def test_confusion_and_iou() -> None:
    target = torch.tensor([0, 0, 1, 1, 1, IGNORE])
    predicted = torch.tensor([0, 1, 1, 1, 0, 1])
    counts = confusion(predicted, target, 2)
    assert counts.tolist() == [[1, 1], [1, 2]]
    np.testing.assert_allclose(iou_per_class(counts), [1 / 3, 2 / 4])
    tissue = np.zeros((5, 5), int)
    tissue[1, 1], tissue[2, 1] = 3, 1  # class 2 present, never predicted; 3 and 4 absent
    assert tissue_miou(tissue) == pytest.approx((3 / 4 + 0.0) / 2)


def test_wound_iou_per_slice_pools_the_scans_of_each_setting() -> None:
    # wound confusion counts, rows = truth, columns = prediction: [[tn, fp], [fn, tp]]
    rows = [{"wound_counts": [[90, 5], [5, 10]], "slice": {"sensor": "lidar", "shape": "flat"}},
            {"wound_counts": [[80, 0], [10, 30]], "slice": {"sensor": "lidar", "shape": "heel"}},
            {"wound_counts": [[50, 0], [0, 0]], "slice": {"sensor": "structured_light", "shape": "heel"}},
            {"wound_counts": [[1, 0], [0, 1]], "slice": {}}]  # a scan without truth.json is in no slice
    assert slice_ious(rows) == pytest.approx({
        "wound_iou.sensor.lidar": 40 / (40 + 5 + 15), "wound_iou.shape.flat": 10 / 20, "wound_iou.shape.heel": 30 / 40,
    })  # structured light has neither wound nor false alarm here: undefined, left out


def test_scan_slices_come_from_the_phantom_truth(tmp_path: Path) -> None:
    generator = {"sensor": "lidar", "shape": "heel", "texture": "photo", "skin_tone": 3}
    (tmp_path / "a.truth.json").write_text(json.dumps({"area_cm2": 1.0, "generator": generator}))
    assert scan_slices(tmp_path / "a.ply") == {"sensor": "lidar", "shape": "heel", "texture": "photo"}
    assert scan_slices(tmp_path / "b.ply") == {}


def test_tissue_targets_ignore_unknown_wound_points(bowl) -> None:
    targets = tissue_targets(bowl)  # no tissue channel: skin 0, wound unknown
    assert set(targets[bowl.label == 1]) == {IGNORE} and set(targets[bowl.label == 0]) == {0}


def test_split_by_scan_is_deterministic_and_disjoint() -> None:
    paths = [Path(f"phantom_{i:04d}.ply") for i in range(20)]
    train, val = split_scans(paths, 0.25)
    shuffled = split_scans(list(reversed(paths)), 0.25)
    assert (set(shuffled[0]), set(shuffled[1])) == (set(train), set(val))  # by name, not by position
    assert set(train).isdisjoint(val) and set(train) | set(val) == set(paths) and val
    assert split_scans(paths, 0.25) == (train, val)
    assert split_scans(paths[:2], 0.01)[1]  # never an empty validation set
    with pytest.raises(ValueError):
        split_scans(paths, 1.0)


@pytest.mark.parametrize("bad", [{"lr": 0.0}, {"tissue_weight": -1.0}, {"dice_weight": -0.5}, {"warmup_fraction": 1.0}])
def test_bad_training_arguments_raise(bad: dict) -> None:
    with pytest.raises(ValueError):
        PointSegmenter(net={"in_channels": 7, **TINY}, **bad)


def test_train_params_reject_unknown_keys() -> None:
    with pytest.raises(ValueError, match="epoch"):
        PointTrainParams.from_params({"epoch": 3})
    with pytest.raises(ValueError):
        trainer_kwargs("fp16")


# ---------------------------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def tiny_phantoms(tmp_path_factory) -> Path:
    """Three procedural phantoms, thinned to about 10k points each (5 mm voxels)."""
    raw, small = tmp_path_factory.mktemp("raw"), tmp_path_factory.mktemp("small")
    for path in write_phantoms(3, raw, 11, PhantomConfig(texture="procedural", photos_dir=None)):
        write_ply(small / path.name, voxel_reduce(read_scan(path), 0.005))
    return small


def test_fast_dev_run_and_scan_evaluation(tiny_phantoms: Path, tmp_path: Path) -> None:
    torch.set_num_threads(2)
    pl.seed_everything(0, workers=True)
    params = PointTrainParams(voxel_mm=0.0, radii_mm=(12.0, 30.0), n_points=256, batch_size=2, chunks_per_scan=2,
                              net={**TINY, "dropout": 0.1})
    data, model = params.data_module(tiny_phantoms), params.model()
    trainer = pl.Trainer(**trainer_kwargs("32-true"), fast_dev_run=True, logger=False, enable_progress_bar=False,
                         default_root_dir=tmp_path)
    trainer.fit(model, datamodule=data)
    metrics = trainer.callback_metrics
    assert np.isfinite(float(metrics["train_loss"])) and 0 <= float(metrics["val_wound_iou"]) <= 1
    assert len(data.train_scans) == 2 and len(data.val_scans) == 1
    assert model.hparams.net["in_channels"] == 13
    result = evaluate_point_segmenter(model, [tiny_phantoms / f"{data.val_scans[0].name}.ply"], params)
    assert 0 <= result["wound_iou"] <= 1 and result["scans"][0]["scan"] == data.val_scans[0].name
    reloaded = PointSegmenter(**model.hparams)
    assert reloaded.net.config == model.net.config
