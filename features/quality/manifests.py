"""One row per file: the scan manifest (phantom scans) and the photo set (wound photos with masks).

Pure table builders: they read files and describe them; judging the rows is the suites' job. A file that
cannot be read becomes a row with its reader's message in `error`, never an exception.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from features.io import DEFAULT_MAX_POINTS, Scan, ScanError, read_scan

SCAN_SUFFIXES = (".ply", ".pcd")
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")


def values_text(values: np.ndarray | list[int] | None) -> str | None:
    """The distinct integer values as sorted comma-separated text ("0,255"), so a set fits in one cell."""
    if values is None:
        return None
    return ",".join(str(int(v)) for v in sorted(set(np.asarray(values).ravel().tolist())))


def subsets_text(allowed: list[int] | range) -> list[str]:
    """Every non-empty subset of `allowed` written as values_text: 'values subset of S' as a value set."""
    allowed = sorted(allowed)
    return [",".join(str(v) for i, v in enumerate(allowed) if mask >> i & 1) for mask in range(1, 2 ** len(allowed))]


# ---------------------------------------------------------------------------------------------- scans


def scan_manifest(folder: str | Path, max_points: int = DEFAULT_MAX_POINTS) -> pd.DataFrame:
    """One row per .ply/.pcd scan in `folder`: counts, extent, label and tissue sets, side files, truth."""
    folder = Path(folder)
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in SCAN_SUFFIXES) if folder.is_dir() else []
    return pd.DataFrame([_scan_row(path, max_points) for path in paths], columns=list(_SCAN_COLUMNS))


_SCAN_COLUMNS = {
    "file": None, "error": None, "n_points": None, "n_wound_points": None, "finite_fraction": None,
    "extent_m": None, "label_values": None, "tissue_values": None, "tissue_outside_wound": None,
    "has_tissue": None, "has_colors": None, "has_camera": False, "has_meta": False, "has_truth": False,
    "truth_points": None, "truth_wound_points": None, "truth_has_tissue": None, "wound_id": None,
}


def _scan_row(path: Path, max_points: int) -> dict:
    stem = path.with_suffix("")
    row = {**_SCAN_COLUMNS, "file": path.name, "has_camera": Path(f"{stem}.camera.json").is_file()}
    row.update(_side_files(stem))
    try:
        scan = read_scan(path, max_points=max_points)
    except ScanError as e:
        row["error"] = str(e).replace(str(path), path.name)  # the folder is in the report's header already
        return row
    row.update(_scan_numbers(scan))
    return row


def _scan_numbers(scan: Scan) -> dict:
    finite = np.isfinite(scan.points).all(axis=1)
    label = scan.label
    return {
        "n_points": len(scan), "finite_fraction": float(finite.mean()),
        "n_wound_points": None if label is None else int((label == 1).sum()),
        "extent_m": float(np.ptp(scan.points[finite], axis=0).max()),
        "label_values": values_text(label), "tissue_values": values_text(scan.tissue),
        # tissue classes describe the wound bed: a class on a skin point means the two fields disagree
        "tissue_outside_wound": None if scan.tissue is None or label is None
        else int(((label == 0) & (scan.tissue > 0)).sum()),
        "has_tissue": scan.tissue is not None, "has_colors": scan.colors is not None,
    }


def _side_files(stem: Path) -> dict:
    """What the metadata and truth files beside a scan say (missing or unreadable: has_* False)."""
    meta, truth = _json_or_none(Path(f"{stem}.meta.json")), _json_or_none(Path(f"{stem}.truth.json"))
    row = {"has_meta": meta is not None, "has_truth": truth is not None,
           "wound_id": None if meta is None else meta.get("wound_id")}
    if truth is not None:
        generator = truth.get("generator") or {}
        row.update(truth_points=generator.get("points"), truth_wound_points=generator.get("wound_points"),
                   truth_has_tissue=truth.get("tissue") is not None)
    return row


def _json_or_none(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


# ---------------------------------------------------------------------------------------------- photos


def photo_set(folder: str | Path) -> pd.DataFrame:
    """One row per photo in folder/images: size, mode, and its mask in folder/labels (size, values, area)."""
    images, labels = Path(folder) / "images", Path(folder) / "labels"
    paths = sorted(p for p in images.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES) if images.is_dir() else []
    return pd.DataFrame([_photo_row(path, labels / f"{path.stem}.png") for path in paths],
                        columns=list(_PHOTO_COLUMNS))


_PHOTO_COLUMNS = {
    "file": None, "error": None, "width": None, "height": None, "mode": None, "mask_exists": False,
    "mask_width": None, "mask_height": None, "mask_mode": None, "mask_values": None, "wound_fraction": None,
}


def _photo_row(image_path: Path, mask_path: Path) -> dict:
    row = {**_PHOTO_COLUMNS, "file": image_path.name, "mask_exists": mask_path.is_file()}
    path = image_path
    try:
        with Image.open(image_path) as image:
            row.update(width=image.width, height=image.height, mode=image.mode)
            # decode (a truncated file fails here, not when a model first reads it); JPEG at 1/8 scale
            # through draft(), which still reads every byte of the stream but skips most of the work
            image.draft(image.mode, (image.width // 8, image.height // 8))
            image.load()
        if row["mask_exists"]:
            path = mask_path
            row.update(_mask_numbers(mask_path))
    except (OSError, UnidentifiedImageError) as e:
        row["error"] = f"{path.name}: {e}"
    return row


def _mask_numbers(path: Path) -> dict:
    with Image.open(path) as mask:
        pixels = np.asarray(mask)
        numbers = {"mask_width": mask.width, "mask_height": mask.height, "mask_mode": mask.mode}
    if pixels.dtype == np.uint8 and pixels.ndim == 2:
        counts = np.bincount(pixels.ravel(), minlength=256)  # one pass gives both the values and the area
        present, wound = np.flatnonzero(counts), counts[128:].sum() / max(pixels.size, 1)
    else:
        present = np.unique(pixels)
        wound = (pixels > 127 if pixels.ndim == 2 else (pixels > 127).any(axis=-1)).mean()  # (H, W)
    return {**numbers, "mask_values": values_text(present), "wound_fraction": float(wound)}
