"""Wound photos with masks (FUSeg layout: images/NNNN.jpg, labels/NNNN.png) as a LightningDataModule.

The photos are decoded and resized once into uint8 tensors held in memory, so an epoch costs no disk or
JPEG work. Augmentation runs per batch as tensor ops on the training device (no torchvision here).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, TensorDataset

from features.io import ScanError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


# ---------------------------------------------------------------------------------------------- files


def photo_files(folder: Path) -> list[Path]:
    """The JPEG/PNG files in `folder`, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def read_photo(path: Path) -> np.ndarray:
    """An RGB photo as a (H, W, 3) uint8 array; ScanError when it cannot be decoded."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ScanError(f"{path}: unreadable image ({str(e).splitlines()[0]}); give a JPEG or PNG photo") from e


def resize_photo(photo: np.ndarray, size: int) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, size, size) uint8, antialiased bilinear (PIL) as in training."""
    resized = Image.fromarray(photo).resize((size, size), Image.Resampling.BILINEAR)
    return torch.from_numpy(np.array(resized)).permute(2, 0, 1).contiguous()  # (3, size, size)


def read_mask(path: Path, size: int) -> torch.Tensor:
    """A 0/255 mask PNG -> (1, size, size) uint8 of 0/1 (area-weighted resize, then >= half)."""
    try:
        with Image.open(path) as mask:
            resized = mask.convert("L").resize((size, size), Image.Resampling.BILINEAR)
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ScanError(f"{path}: unreadable mask ({str(e).splitlines()[0]})") from e
    return torch.from_numpy(np.array(resized) >= 128).to(torch.uint8)[None]  # (1, size, size)


def photo_pairs(root: Path) -> list[tuple[Path, Path]]:
    """(image, mask) pairs of root/images and root/labels matched by file stem."""
    images, labels = root / "images", root / "labels"
    if not images.is_dir() or not labels.is_dir():
        raise ScanError(f"{root}: expected images/ and labels/ folders (the FUSeg train layout)")
    pairs = [(img, labels / f"{img.stem}.png") for img in photo_files(images)]
    pairs = [(img, lab) for img, lab in pairs if lab.is_file()]
    if not pairs:
        raise ScanError(f"{root}: no image in images/ with a matching mask in labels/")
    return pairs


# ---------------------------------------------------------------------------------------------- split


def stem_fraction(stem: str) -> float:
    """A stable pseudo-random number in [0, 1) from the file stem (the same on every machine and run)."""
    return int.from_bytes(hashlib.sha256(stem.encode()).digest()[:8], "big") / 2**64


def split_stems(stems: list[str], val_fraction: float) -> tuple[list[str], list[str]]:
    """(train, validation) stems: validation holds those whose hash falls under val_fraction, at least one."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if len(stems) < 2:
        raise ValueError(f"need at least 2 images to split into training and validation, got {len(stems)}")
    # by hash, so a photo's side never changes when others are added; the lowest hash makes tiny sets non-empty
    lowest = min(stems, key=stem_fraction)
    val = {s for s in stems if stem_fraction(s) < val_fraction} | {lowest}
    return [s for s in stems if s not in val], [s for s in stems if s in val]


def held_out_stems(stems: list[str], test_fraction: float) -> list[str]:
    """The test stems: those whose hash falls in the top test_fraction (validation takes the bottom of the range).

    Neither training nor checkpoint selection sees them, so their score is one on photos the model never saw.
    """
    if not 0.0 <= test_fraction < 0.5:
        raise ValueError(f"test_fraction must be in [0, 0.5), got {test_fraction}")
    return [s for s in stems if stem_fraction(s) >= 1.0 - test_fraction]


def photo_split(root: Path, val_fraction: float, test_fraction: float = 0.0) -> dict[str, list[tuple[Path, Path]]]:
    """(image, mask) pairs of root split by image into train, val and test."""
    pairs = {img.stem: (img, lab) for img, lab in photo_pairs(root)}
    test = set(held_out_stems(sorted(pairs), test_fraction))
    train, val = split_stems(sorted(set(pairs) - test), val_fraction)
    return {"train": [pairs[s] for s in train], "val": [pairs[s] for s in val],
            "test": [pairs[s] for s in sorted(test)]}


# ---------------------------------------------------------------------------------------------- augmentation


@dataclass(frozen=True)
class AugmentConfig:
    """Training-time augmentation; geometric parts move image and mask together, colour parts the image only."""

    flip: bool = True
    rotate90: bool = True
    max_rotate_deg: float = 15.0  # extra small rotation on top of the 90-degree turns
    scale: tuple[float, float] = (0.8, 1.25)  # zoom factor range (> 1 zooms in)
    max_shift: float = 0.1  # translation, as a fraction of the image side
    brightness: float = 0.2  # multiply by 1 +- this
    contrast: float = 0.2
    saturation: float = 0.2
    hue_deg: float = 8.0  # rotation of the chroma about the grey axis
    wound_focus: float = 0.5  # with crops: the fraction of crops centred on a wound pixel (wounds are small)

    def __post_init__(self) -> None:
        low, high = self.scale
        if not 0.0 < low <= high:
            raise ValueError(f"AugmentConfig.scale must be 0 < low <= high, got {self.scale}")
        for name in ("max_rotate_deg", "max_shift", "brightness", "contrast", "saturation", "hue_deg"):
            if getattr(self, name) < 0:
                raise ValueError(f"AugmentConfig.{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.wound_focus <= 1.0:
            raise ValueError(f"AugmentConfig.wound_focus must be in [0, 1], got {self.wound_focus}")
        for name in ("brightness", "contrast", "saturation"):
            if getattr(self, name) >= 1:
                raise ValueError(f"AugmentConfig.{name} must be < 1, got {getattr(self, name)}")


def _uniform(n: int, low: float, high: float, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, device=like.device, generator=generator)


def crop_centres(masks: torch.Tensor, wound_focus: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Crop centres (B, 2) as affine_grid (x, y) in [-1, 1]: a wound pixel with probability wound_focus, else any."""
    batch, _, height, width = masks.shape
    on_wound = torch.rand(batch, device=masks.device, generator=generator) < wound_focus
    # a photo without wound, or a crop not aimed at the wound, samples every pixel alike
    weights = torch.where(on_wound[:, None], masks.flatten(1), torch.ones_like(masks.flatten(1))) + 1e-6  # (B, H W)
    index = torch.multinomial(weights, 1, generator=generator).squeeze(1)  # (B,)
    row, col = index // width, index % width
    return torch.stack([(2 * col + 1) / width - 1, (2 * row + 1) / height - 1], dim=1).float()  # (B, 2)


def random_affine(batch: int, config: AugmentConfig, like: torch.Tensor, generator: torch.Generator | None = None,
                  fraction: float = 1.0, centres: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample affine maps (B, 2, 3) for affine_grid: flip, 90-degree turns, small rotation, zoom, shift.

    `fraction` < 1 makes the output a crop of that fraction of the side, centred on `centres` (B, 2).
    """
    turns = torch.randint(0, 4 if config.rotate90 else 1, (batch,), device=like.device, generator=generator)
    tilt = math.radians(config.max_rotate_deg)
    angle = turns * (math.pi / 2) + _uniform(batch, -tilt, tilt, like, generator)
    zoom = torch.exp(_uniform(batch, math.log(config.scale[0]), math.log(config.scale[1]), like, generator))
    flip = torch.ones(batch, device=like.device)
    if config.flip:
        flip = torch.where(torch.rand(batch, device=like.device, generator=generator) < 0.5, -flip, flip)
    cos, sin = torch.cos(angle) * fraction / zoom, torch.sin(angle) * fraction / zoom
    shift = _uniform(2 * batch, -config.max_shift, config.max_shift, like, generator).view(batch, 2) * 2
    if centres is not None:
        shift = shift + centres
    # output pixel -> input pixel: rotate and scale, mirror x first when flipped
    rows = [torch.stack([cos * flip, -sin, shift[:, 0]], 1), torch.stack([sin * flip, cos, shift[:, 1]], 1)]
    return torch.stack(rows, 1)  # (B, 2, 3)


def warp(images: torch.Tensor, masks: torch.Tensor, theta: torch.Tensor,
         out_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply affine maps to float images (B, 3, H, W) and 0/1 masks (B, 1, H, W); outside is black / not wound."""
    batch, channels, height, width = images.shape
    shape = [batch, channels, out_size or height, out_size or width]
    grid = F.affine_grid(theta, shape, align_corners=False)  # (B, H_out, W_out, 2)
    images = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # bilinear then >= 0.5 keeps the mask binary and its edge where the image's edge lands
    masks = F.grid_sample(masks, grid, mode="bilinear", padding_mode="zeros", align_corners=False) >= 0.5
    return images, masks.to(images.dtype)


def jitter_colour(images: torch.Tensor, config: AugmentConfig,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Random brightness, contrast, saturation and hue per sample of float images (B, 3, H, W) in [0, 1]."""
    batch = images.shape[0]

    def factor(amount: float) -> torch.Tensor:
        return _uniform(batch, 1 - amount, 1 + amount, images, generator).view(batch, 1, 1, 1)

    images = images * factor(config.brightness)
    mean = images.mean(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
    images = mean + (images - mean) * factor(config.contrast)
    grey = images.mean(dim=1, keepdim=True)  # (B, 1, H, W)
    images = grey + (images - grey) * factor(config.saturation)
    # hue: rotate RGB about the grey axis (1, 1, 1)/sqrt(3) by a small angle (Rodrigues' formula)
    hue = math.radians(config.hue_deg)
    angle = _uniform(batch, -hue, hue, images, generator).view(batch, 1, 1)
    axis = torch.full((3,), 3**-0.5, device=images.device)
    cross = torch.tensor([[0.0, -1, 1], [1, 0, -1], [-1, 1, 0]], device=images.device) * 3**-0.5
    eye = torch.eye(3, device=images.device)
    rotation = torch.cos(angle) * eye + torch.sin(angle) * cross + (1 - torch.cos(angle)) * torch.outer(axis, axis)
    images = torch.einsum("bij,bjhw->bihw", rotation, images)  # (B, 3, H, W)
    return images.clamp(0.0, 1.0)


def augment(images: torch.Tensor, masks: torch.Tensor, config: AugmentConfig, generator: torch.Generator | None = None,
            crop: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Geometric (image and mask together) then colour (image only) augmentation of a square float batch.

    With `crop`, the output is a crop x crop patch at the input's resolution (B, 3, crop, crop).
    """
    side = images.shape[-1]
    if crop is None or crop >= side:
        crop = None
        theta = random_affine(images.shape[0], config, images, generator)
    else:
        centres = crop_centres(masks, config.wound_focus, generator)
        theta = random_affine(images.shape[0], config, images, generator, fraction=crop / side, centres=centres)
    images, masks = warp(images, masks, theta, out_size=crop)
    return jitter_colour(images, config, generator), masks


# ---------------------------------------------------------------------------------------------- data module


def load_pairs(pairs: list[tuple[Path, Path]], size: int) -> TensorDataset:
    """Decode and resize every pair once: images (N, 3, size, size) and masks (N, 1, size, size), uint8."""
    images = torch.stack([resize_photo(read_photo(img), size) for img, _ in pairs])
    masks = torch.stack([read_mask(lab, size) for _, lab in pairs])
    return TensorDataset(images, masks)


class PhotoDataModule(pl.LightningDataModule):
    """Photos and masks of a folder with images/ and labels/, split by image into training and validation.

    Photos are held at size x size; training sees augmented crop x crop patches of them (the whole photo when
    crop is None), validation the whole photo.
    """

    def __init__(self, root: str | Path, size: int = 160, batch_size: int = 16, val_fraction: float = 0.12,
                 augment: AugmentConfig | None = None, crop: int | None = None, num_workers: int = 0,
                 test_fraction: float = 0.0) -> None:
        super().__init__()
        if size < 16:
            raise ValueError(f"size must be at least 16 pixels, got {size}")
        if crop is not None and not 16 <= crop <= size:
            raise ValueError(f"crop must be between 16 and size ({size}) pixels, got {crop}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.root, self.size, self.crop = Path(root), size, crop
        self.batch_size, self.num_workers = batch_size, num_workers
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.augment_config = augment if augment is not None else AugmentConfig()
        self.train_set: TensorDataset | None = None
        self.val_set: TensorDataset | None = None
        self.train_stems: list[str] = []
        self.val_stems: list[str] = []

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:  # loaded once, reused by fit, validate and test
            return
        split = photo_split(self.root, self.val_fraction, self.test_fraction)
        self.train_stems, self.val_stems = ([img.stem for img, _ in split[part]] for part in ("train", "val"))
        self.train_set = load_pairs(split["train"], self.size)
        self.val_set = load_pairs(split["val"], self.size)

    def train_dataloader(self) -> DataLoader:
        # drop a last batch of a single photo: its BatchNorm statistics would be those of one image
        drop_last = len(self.train_set) % self.batch_size == 1
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True, drop_last=drop_last,
                          num_workers=self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.batch_size, num_workers=self.num_workers)

    def on_after_batch_transfer(self, batch: list[torch.Tensor], dataloader_idx: int) -> tuple:
        """uint8 -> float in [0, 1] on the device; augment only while training."""
        images, masks = batch
        images, masks = images.float() / 255.0, masks.float()
        if self.trainer is not None and self.trainer.training:
            images, masks = augment(images, masks, self.augment_config, crop=self.crop)
        return images, masks
