"""Wound photos for data/photos: the annotated FUSeg photos, imported, or stand-ins rendered from phantoms.

Either way the folder has the FUSeg train layout (images/NAME.jpg, labels/NAME.png, masks 0/255) and a
provenance.json naming the source, so that the models trained on it and the phantoms draped with it can tell.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from features.io import ScanError
from features.phantoms import PhantomConfig, make_phantom

PROVENANCE = "provenance.json"
FUSEG, SYNTHETIC = "fuseg", "synthetic"
STANDIN_SEED_OFFSET = 104729  # stand-ins: phantoms of the training seed plus this, so no scan shares their scene


def import_photos(source: Path, out: Path) -> int:
    """Copy images/NNNN.jpg and labels/NNNN.png pairs from `source` (or source/train) into `out`."""
    root = source / "train" if (source / "train" / "images").is_dir() else source
    images, labels = root / "images", root / "labels"
    if not images.is_dir() or not labels.is_dir():
        raise ScanError(f"{source}: expected images/ and labels/ folders (the FUSeg train layout)")
    pairs = [(img, labels / (img.stem + ".png")) for img in sorted(images.glob("*.jpg")) + sorted(images.glob("*.png"))]
    pairs = [(img, lab) for img, lab in pairs if lab.is_file()]
    if not pairs:
        raise ScanError(f"{source}: no image with a matching mask in labels/")
    staging = _staging(out)
    for img, lab in pairs:
        shutil.copyfile(img, staging / "images" / img.name)
        shutil.copyfile(lab, staging / "labels" / lab.name)
    # no source path: the same photos imported from another folder must give the same data version
    _swap_in(staging, out, {"source": FUSEG, "photos": len(pairs),
                            "description": "FUSeg 2021 training set (AZH Wound and Vascular Center), see README"})
    return len(pairs)


def write_standin_photos(out: Path, n: int, seed: int, config: PhantomConfig) -> int:
    """Render the photos and wound masks of n procedural phantoms (this seed, config's ranges) into `out`.

    For machines without FUSeg: the U-Net can then be trained and tested end to end, on synthetic photos
    whose provenance says so; its score says nothing about real wound photos.
    """
    if n < 1:
        raise ValueError(f"phantoms.standin_photos must be at least 1, got {n}")
    procedural = replace(config, texture="procedural", photos_dir=None)
    staging = _staging(out)
    for i in range(n):
        phantom = make_phantom(i, procedural, seed)
        Image.fromarray(phantom.photo).save(staging / "images" / f"{i:04d}.jpg", quality=92)
        Image.fromarray(phantom.photo_mask.astype(np.uint8) * 255).save(staging / "labels" / f"{i:04d}.png")
    _swap_in(staging, out, {"source": SYNTHETIC, "photos": n, "seed": seed,
                            "description": "synthetic stand-ins, not FUSeg: photos of procedural wound phantoms "
                                           "(features.phantoms) with their exact wound masks"})
    return n


def photo_source(folder: Path) -> str | None:
    """'fuseg' or 'synthetic' from the folder's provenance.json; None without photos.

    An import older than the provenance file holds FUSeg photos (nothing else was ever imported).
    """
    if not (folder / "images").is_dir():
        return None
    provenance = folder / PROVENANCE
    return json.loads(provenance.read_text())["source"] if provenance.is_file() else FUSEG


def ensure_photos(folder: Path, fuseg: Path | None, standins: int, config: PhantomConfig) -> str | None:
    """Fill `folder` unless it holds photos: FUSeg when that folder exists, else `standins` stand-ins.

    Returns the photo source. Stand-ins use the phantoms' seed plus STANDIN_SEED_OFFSET.
    """
    if photo_source(folder) is None:
        if fuseg is not None and fuseg.is_dir():
            import_photos(fuseg, folder)
        elif standins > 0:
            write_standin_photos(folder, standins, config.seed + STANDIN_SEED_OFFSET, config)
    return photo_source(folder)


def phantom_textures(config: PhantomConfig, root: Path = Path(".")) -> PhantomConfig:
    """The PhantomConfig with photo textures from root's photos only when they are FUSeg, else procedural ones.

    Draping a phantom with a stand-in (itself a phantom's photo) would only lose the tissue labels.
    """
    if config.photos_dir is None:
        return config
    photos = root / config.photos_dir
    return replace(config, photos_dir=str(photos) if photo_source(photos) == FUSEG else None)


def _staging(out: Path) -> Path:
    staging = out.with_name(out.name + ".part")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "images").mkdir(parents=True)
    (staging / "labels").mkdir()
    return staging


def _swap_in(staging: Path, out: Path, provenance: dict) -> None:
    (staging / PROVENANCE).write_text(json.dumps(provenance, indent=2, sort_keys=True) + "\n")
    # swap in whole, so an interrupted import never leaves a half-filled data/photos
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
