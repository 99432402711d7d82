"""Wound masks for a folder of photos with a trained U-Net (`coherency segment-photos IN_DIR OUT_DIR`)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from features.io import ScanError
from models.data.photos import photo_files, read_photo, resize_photo
from models.unet import UNet

BATCH = 8


def load_unet_checkpoint(path: str | Path) -> tuple[UNet, int]:
    """The U-Net of a PhotoSegmenter checkpoint, in eval mode on the CPU, and the input size it was trained at."""
    from models.lit.photos import PhotoSegmenter  # Lightning is imported only when a checkpoint is read

    path = Path(path)
    if not path.is_file():
        raise ScanError(f"{path}: no such checkpoint; train the U-Net first (coherency train unet)")
    module = PhotoSegmenter.load_from_checkpoint(path, map_location="cpu")
    return module.net.eval(), int(module.hparams.size)


@torch.no_grad()
def predict_probabilities(model: UNet, photos: list[np.ndarray], size: int) -> list[np.ndarray]:
    """Wound probability (H, W) of each (H, W, 3) uint8 photo, at the photo's own size."""
    device = next(model.parameters()).device
    batch = torch.stack([resize_photo(photo, size) for photo in photos]).to(device)  # (B, 3, size, size)
    batch = (batch.float() / 255.0).contiguous(memory_format=torch.channels_last)
    probs = torch.sigmoid(model(batch).float())  # (B, 1, size, size)
    # back to each photo's own size; bilinear on probabilities, so the edge is placed between the coarse pixels
    return [F.interpolate(p[None], size=photo.shape[:2], mode="bilinear", align_corners=False)[0, 0].cpu().numpy()
            for p, photo in zip(probs, photos, strict=True)]


def _input_photos(in_dir: Path, out_dir: Path) -> list[Path]:
    if not in_dir.is_dir():
        raise ScanError(f"{in_dir}: not a folder; give a folder of JPEG or PNG photos")
    if out_dir.exists() and not out_dir.is_dir():
        raise ScanError(f"{out_dir}: exists and is not a folder")
    if out_dir.resolve() == in_dir.resolve():
        raise ScanError(f"{out_dir}: the output folder must differ from the input folder (masks would replace photos)")
    paths = photo_files(in_dir)
    if not paths:
        raise ScanError(f"{in_dir}: no photo in the folder (looked for .jpg, .jpeg and .png files)")
    stems = [p.stem for p in paths]
    clash = sorted({s for s in stems if stems.count(s) > 1})
    if clash:
        raise ScanError(f"{in_dir}: photos share a file stem ({', '.join(clash[:3])}); their masks would collide")
    return paths


def segment_photos(in_dir: str | Path, out_dir: str | Path, model: UNet, size: int, threshold: float = 0.5) -> int:
    """Write out_dir/STEM.png, a 0/255 mask the size of the photo, for every photo in in_dir; returns the count."""
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    paths = _input_photos(in_dir, out_dir)
    model.eval()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # every mask goes to a staging folder first: a bad photo halfway leaves out_dir as it was
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".part", dir=out_dir.parent))
    try:
        for start in range(0, len(paths), BATCH):
            chunk = paths[start:start + BATCH]
            probs = predict_probabilities(model, [read_photo(p) for p in chunk], size)
            for path, prob in zip(chunk, probs, strict=True):
                mask = np.where(prob >= threshold, 255, 0).astype(np.uint8)
                Image.fromarray(mask).save(staging / f"{path.stem}.png")
        if not out_dir.exists():
            staging.rename(out_dir)
        else:
            for mask in staging.iterdir():
                os.replace(mask, out_dir / mask.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return len(paths)


def read_full_mask(path: Path) -> np.ndarray:
    """A 0/255 mask PNG at its own size -> (H, W) bool."""
    with Image.open(path) as mask:
        return np.asarray(mask.convert("L")) >= 128


def photo_scores(model: UNet, size: int, pairs: list[tuple[Path, Path]], threshold: float = 0.5) -> dict:
    """Dice of the model's masks at each photo's own resolution: mean per photo and pooled over all pixels.

    A photo where neither mask nor prediction has wound scores 1 in the mean (it was segmented right).
    """
    if not pairs:
        raise ValueError("no photos to score")
    model.eval()
    dice, overlap, total = [], 0, 0
    for start in range(0, len(pairs), BATCH):
        chunk = pairs[start:start + BATCH]
        probs = predict_probabilities(model, [read_photo(img) for img, _ in chunk], size)
        for prob, (_, lab) in zip(probs, chunk, strict=True):
            predicted, truth = prob >= threshold, read_full_mask(lab)
            both, either = int((predicted & truth).sum()), int(predicted.sum() + truth.sum())
            dice.append(2 * both / either if either else 1.0)
            overlap, total = overlap + both, total + either
    return {"dice": float(np.mean(dice)), "dice_pooled": 2 * overlap / total if total else 1.0,
            "photos": len(pairs)}
