"""Import the annotated wound photos (FUSeg layout) into data/, checking every pair on the way."""

from __future__ import annotations

import shutil
from pathlib import Path

from features.io import ScanError


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
    staging = out.with_name(out.name + ".part")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "images").mkdir(parents=True)
    (staging / "labels").mkdir()
    for img, lab in pairs:
        shutil.copyfile(img, staging / "images" / img.name)
        shutil.copyfile(lab, staging / "labels" / lab.name)
    # swap in whole, so an interrupted import never leaves a half-filled data/photos
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    return len(pairs)
