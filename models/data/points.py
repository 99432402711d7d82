"""Phantom point clouds as (B, N, C) chunks of per-point features, with wound and tissue targets."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from scipy.spatial import cKDTree
from torch.utils.data import DataLoader, Dataset

from features.io import Scan, read_scan
from features.point_chunks import augment_chunks, normalise_chunks, patch_radius, training_chunks
from features.point_features import DEFAULT_RADII, scan_inputs

IGNORE = -100  # target of points whose tissue class is unknown (torch's cross-entropy default ignore_index)


@dataclass
class PointScan:
    """One scan as the network sees it: points, features and targets, with its search tree."""

    name: str
    points: np.ndarray  # (N, 3) float64
    features: np.ndarray  # (N, C) float32
    wound: np.ndarray  # (N,) int64, 0 skin or background, 1 wound
    tissue: np.ndarray  # (N,) int64 tissue class, IGNORE where unknown
    tree: cKDTree
    radius: float  # of a chunk of the configured size


def tissue_targets(scan: Scan) -> np.ndarray:
    """Tissue class per point; wound points without a known class (photo textures, class 0) are IGNORE.

    Skin and background points are class 0 whether or not the scan carries tissue.
    """
    tissue = np.zeros(len(scan), np.int64) if scan.tissue is None else scan.tissue.astype(np.int64)
    return np.where((scan.label == 1) & (tissue == 0), IGNORE, tissue)


def load_point_scan(path: Path, voxel: float, radii: tuple[float, ...], n_points: int) -> PointScan:
    """Read, reduce and featurise one labelled scan."""
    scan = read_scan(path)
    if scan.label is None:
        raise ValueError(f"{path}: the scan has no per-point 'label'; training needs labelled scans")
    reduced, features = scan_inputs(scan, voxel, radii)
    return PointScan(path.stem, reduced.points, features, reduced.label.astype(np.int64), tissue_targets(reduced),
                     cKDTree(reduced.points), patch_radius(reduced.points, n_points))


def split_scans(paths: list[Path], val_fraction: float) -> tuple[list[Path], list[Path]]:
    """Deterministic split by scan: a file goes to validation when the CRC of its name falls below the fraction.

    At least one scan goes each way when there are two or more.
    """
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    score = {p: zlib.crc32(p.name.encode()) / 2**32 for p in paths}
    val = [p for p in paths if score[p] < val_fraction]
    if len(paths) > 1 and val_fraction > 0 and not val:
        val = [min(paths, key=score.get)]
    if len(val) == len(paths) and len(paths) > 1:
        val = val[:-1]
    return [p for p in paths if p not in val], val


class PointChunks(Dataset):
    """Chunks of prepared scans; training draws fresh random chunks, validation a fixed set."""

    def __init__(self, scans: list[PointScan], chunks_per_scan: int, n_points: int, wound_share: float,
                 train: bool, seed: int = 0) -> None:
        self.scans, self.n_points, self.wound_share, self.train = scans, n_points, wound_share, train
        self.length = len(scans) * chunks_per_scan
        self.fixed = None if train else [self._draw(i, np.random.default_rng([seed, i])) for i in range(self.length)]

    def __len__(self) -> int:
        return self.length

    def _draw(self, i: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        scan = self.scans[i % len(self.scans)]
        index = training_chunks(scan.points, scan.tree, scan.wound, 1, self.n_points, rng, self.wound_share,
                                scan.radius)
        chunk = normalise_chunks(scan.features[index])  # (1, n, C)
        if self.train:
            chunk = augment_chunks(chunk, rng)
        return chunk[0], scan.wound[index[0]], scan.tissue[index[0]]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.fixed is None:
            # seeded from torch so that seed_everything(..., workers=True) makes every epoch reproducible
            features, wound, tissue = self._draw(i, np.random.default_rng(int(torch.randint(2**31, ()))))
        else:
            features, wound, tissue = self.fixed[i]
        return torch.from_numpy(features), torch.from_numpy(wound), torch.from_numpy(tissue)


class PointDataModule(pl.LightningDataModule):
    """A folder of labelled PLY scans (phantoms), split by scan, served as (B, n_points, C) chunks."""

    def __init__(self, data_dir: str | Path, n_points: int = 4096, batch_size: int = 8, chunks_per_scan: int = 16,
                 val_fraction: float = 0.2, voxel: float = 0.001, radii: tuple[float, ...] = DEFAULT_RADII,
                 wound_share: float = 0.5, seed: int = 0, num_workers: int = 0) -> None:
        super().__init__()
        if n_points < 1 or batch_size < 1 or chunks_per_scan < 1:
            raise ValueError("n_points, batch_size and chunks_per_scan must be positive")
        if not 0 <= wound_share <= 1:
            raise ValueError(f"wound_share must be in [0, 1], got {wound_share}")
        self.data_dir, self.n_points, self.batch_size = Path(data_dir), n_points, batch_size
        self.chunks_per_scan, self.val_fraction, self.voxel = chunks_per_scan, val_fraction, voxel
        self.radii, self.wound_share, self.seed, self.num_workers = tuple(radii), wound_share, seed, num_workers
        self.train_scans: list[PointScan] = []
        self.val_scans: list[PointScan] = []

    def setup(self, stage: str | None = None) -> None:
        if self.train_scans:
            return
        paths = sorted(self.data_dir.glob("*.ply"))
        if not paths:
            raise ValueError(f"{self.data_dir}: no .ply scans to train on")
        train, val = split_scans(paths, self.val_fraction)
        load = [load_point_scan(p, self.voxel, self.radii, self.n_points) for p in train + val]
        self.train_scans, self.val_scans = load[:len(train)], load[len(train):]

    @property
    def in_channels(self) -> int:
        """Features per point for the configured radii."""
        return 9 + 2 * len(self.radii)

    def train_dataloader(self) -> DataLoader:
        data = PointChunks(self.train_scans, self.chunks_per_scan, self.n_points, self.wound_share, train=True)
        return DataLoader(data, batch_size=self.batch_size, shuffle=True, drop_last=len(data) > self.batch_size,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0)

    def val_dataloader(self) -> DataLoader:
        data = PointChunks(self.val_scans or self.train_scans, self.chunks_per_scan, self.n_points,
                           self.wound_share, train=False, seed=self.seed)
        return DataLoader(data, batch_size=self.batch_size, num_workers=self.num_workers)
