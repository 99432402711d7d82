"""The training reference: the monitored row of every training phantom, saved as parquet.

Its predictions are the phantoms' exact truth (area, volume, depth) and labels (wound fraction), not a model's:
the reference then stays valid when a new champion is registered, needs no model to build, and a prediction
drift means the served outputs no longer look like the wounds the models were trained to reproduce (the
champion's own bias included). Columns without truth (segmentation confidence, prognosis) are empty in the
reference and so are not tested for drift.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from features.io import Scan, read_metadata, read_scan
from serving.inference_features import inference_row

TRUTH_OUTPUTS = ("area_cm2", "volume_cm3", "max_depth_mm")


def label_result(scan: Scan, truth: Mapping | None) -> dict:
    """An assessment-shaped result from a labelled scan and its truth: what a perfect model would return."""
    labels = scan.label
    segmentation = None if labels is None else {"points": len(scan), "wound_points": int((labels == 1).sum())}
    return {**{name: (truth or {}).get(name) for name in TRUTH_OUTPUTS}, "segmentation": segmentation}


def reference_rows(phantoms: Iterable[tuple[Scan, Mapping | None, Mapping | None]]) -> pd.DataFrame:
    """Rows of (scan, truth, metadata) triples."""
    return pd.DataFrame([inference_row(scan, label_result(scan, truth), meta) for scan, truth, meta in phantoms])


def build_reference(phantoms_dir: Path) -> pd.DataFrame:
    """The rows of every phantom in a folder written by `coherency data phantoms` (PLY + meta + truth JSON)."""
    plys = sorted(Path(phantoms_dir).glob("*.ply"))
    if not plys:
        raise FileNotFoundError(f"no phantoms (*.ply) in {phantoms_dir}; run `coherency data phantoms` first")
    return reference_rows((read_scan(ply), _json(ply.with_suffix(".truth.json")),
                           _metadata(ply.with_suffix(".meta.json"))) for ply in plys)


def save_reference(frame: pd.DataFrame, path: Path) -> Path:
    """Write the reference parquet (parent folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return path


def load_reference(path: Path, phantoms_dir: Path) -> pd.DataFrame:
    """The saved reference, built from the phantoms (and saved) when there is none yet."""
    if path.is_file():
        return pd.read_parquet(path)
    frame = build_reference(phantoms_dir)
    save_reference(frame, path)
    return frame


def _json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _metadata(path: Path) -> dict | None:
    return read_metadata(path) if path.is_file() else None
