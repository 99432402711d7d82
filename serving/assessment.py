"""One wound scan assessed by the ensemble: segment (points + photo), fuse, measure, check, optionally prognose.

`assess` returns a JSON-ready dict (no NaN: missing numbers are None). A scan without a wound, or one the
engine cannot measure, is a result with null measurements and a flag, never an exception; bad inputs (a photo
without its camera, probabilities of the wrong shape) are ValueErrors.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from features.io import Camera, Scan
from features.measure import MeasureError, MeasureSettings, measure
from features.point_chunks import Predictor, predict_scan
from features.stopwatch import Stopwatch
from models.fusion_segmentation import SegmentationFusion, fuse_segmentation, labelled_scan
from models.wound_growth import Growth
from serving.ensemble import Ensemble
from serving.payload import read_scan_bytes  # re-exported: it moved to the torch-free decoder
from serving.plausibility import (
    NOT_MEASURABLE,
    PlausibilityRules,
    edge_flags,
    flag,
    measurement_flags,
    wound_point_flags,
)

__all__ = ["PlausibilityRules", "PointProbabilities", "assess", "predict_point_probabilities", "read_scan_bytes"]

MEASUREMENTS = ("area_cm2", "volume_cm3", "max_depth_mm", "mean_depth_mm", "perimeter_cm", "length_cm", "width_cm",
                "surface_area_cm2")
CANDIDATE_PROBABILITY = 0.1  # points any model finds this wound-like are where the segmentation can be wrong
# the fused wound grows into adjacent points below the skin, which the networks often leave out (a bowl's
# slope, a crater's wall) and which would otherwise pull the skin fit into the wound (models.wound_growth)
GROWTH = Growth()
HALF_CONFIDENCE_WIDTH = 0.25  # a 95% interval of +-25% of the value halves a measurement's confidence
History = Mapping[str, Any] | pd.DataFrame  # the prognosis features of one wound (see _prognosis)
# the prognosis model's per-visit measurements, filled from this scan when the history does not give them
PROGNOSIS_MEASUREMENTS = {"area_cm2": "area_cm2", "volume_cm3": "volume_cm3", "depth_mm": "max_depth_mm"}


class PointProbabilities(NamedTuple):
    """The point network's output for one scan: P(wound) (N,) and tissue class probabilities (N, 5) or None."""

    wound: np.ndarray
    tissue: np.ndarray | None


def predict_point_probabilities(ensemble: Ensemble, scan: Scan, predict: Predictor | None = None) -> PointProbabilities:
    """PointNet++'s wound and tissue probabilities for every point, with the settings it was trained with.

    predict: what runs the network on a batch of chunks (default: the ensemble's PointNet++ directly; the
    predictor passes its micro-batcher, which joins concurrent scans' chunks into one forward pass).
    """
    from models.lit.points import numpy_predictor

    params = ensemble.point_params
    predict = predict or numpy_predictor(ensemble.points, params.precision)
    wound, tissue = predict_scan(scan, predict, params.voxel_mm * 1e-3, params.radii, params.n_points,
                                 params.batch_size)
    return PointProbabilities(wound[:, 1], tissue)


def assess(ensemble: Ensemble, scan: Scan, photo: np.ndarray | None = None, camera: Camera | None = None,
           history: History | None = None, *,
           point_probabilities: PointProbabilities | None = None, rules: PlausibilityRules | None = None,
           settings: MeasureSettings | None = None, clock: Stopwatch | None = None) -> dict:
    """Segment, measure and check one scan; prognose when `history` is given and the ensemble has the model.

    photo: (H, W, 3) uint8 with its `camera` (used when the ensemble has a U-Net); history: the prognosis
    features of this wound (see `_prognosis`); point_probabilities: precomputed point-network output (evaluation
    gives the true labels here) instead of running PointNet++; clock: collects each stage's wall time (photo,
    points, fusion, measure, prognosis) for the server's metrics.
    """
    rules, clock = rules or PlausibilityRules(), clock or Stopwatch()
    with clock.stage("photo"):
        photo_map = _photo_probability_map(ensemble, photo, camera)
    if point_probabilities is None:
        with clock.stage("points"):
            point_probabilities = predict_point_probabilities(ensemble, scan)
    wound_prob, tissue_prob = point_probabilities
    with clock.stage("fusion"):
        fused = fuse_segmentation(scan, wound_prob, tissue_prob, photo_map,
                                  None if photo_map is None else camera, ensemble.fusion, GROWTH)
    wound = fused.label == 1
    flags = wound_point_flags(int(wound.sum()), rules)
    report = None
    if wound.any():
        flags += edge_flags(scan.points, wound, rules)
        try:
            with clock.stage("measure"):
                report = measure(labelled_scan(scan, fused), settings)
        except MeasureError as e:
            flags.append(flag(NOT_MEASURABLE, f"the wound could not be measured: {e}"))
    if report is not None:
        flags += measurement_flags(report, rules)
    segmentation = _segmentation_summary(fused, photo_map is not None)
    with clock.stage("prognosis"):
        prognosis = _prognosis(ensemble, history, report)
    result = {
        **{name: None if report is None else report[name] for name in MEASUREMENTS},
        "uncertainty": None if report is None else report["uncertainty"],
        "tissue": None if report is None else report["tissue"],
        # the measured outline, [x, y, z] scan metres (<= 200 vertices): what a report draws over the photo
        "outline": None if report is None else report["outline"],
        "segmentation": segmentation,
        "confidence": confidence(report, segmentation["mean_confidence"]),
        "flags": flags,
        "quality": None if report is None else report["quality"],
        "prognosis": prognosis,
        "models": dict(ensemble.versions),
        "data_version": ensemble.data_version,
    }
    return json_ready(result)


def _photo_probability_map(ensemble: Ensemble, photo: np.ndarray | None, camera: Camera | None) -> np.ndarray | None:
    """The U-Net's wound probability at each pixel of the photo; None without a photo or a photo model."""
    if photo is None:
        return None
    if camera is None:
        raise ValueError("a photo needs its camera (intrinsics and world_to_camera) to be fused with the scan; "
                         "send the camera JSON with the photo, or leave the photo out")
    photo = np.asarray(photo)
    if photo.ndim != 3 or photo.shape[2] != 3 or photo.dtype != np.uint8:
        raise ValueError(f"the photo must be an (H, W, 3) uint8 RGB array, got {photo.shape} {photo.dtype}")
    if photo.shape[:2] != (camera.height, camera.width):
        raise ValueError(f"the photo is {photo.shape[1]}x{photo.shape[0]} pixels but its camera describes "
                         f"{camera.width}x{camera.height}; send the photo at the camera's resolution")
    if ensemble.unet is None:
        return None
    from models.segment import predict_probabilities

    return predict_probabilities(ensemble.unet, [photo], ensemble.unet_size)[0]


def _segmentation_summary(fused: SegmentationFusion, photo_used: bool) -> dict:
    """Counts and the mean confidence max(p, 1 - p) over the candidate points (fused P(wound) >= 0.1).

    Far skin is certain for every model; averaging over it would call any segmentation confident.
    """
    candidates = fused.wound_prob >= CANDIDATE_PROBABILITY
    pool = fused.confidence[candidates] if candidates.any() else fused.confidence
    return {"points": len(fused.label), "wound_points": int(fused.label.sum()), "photo_used": photo_used,
            "photo_coverage": fused.photo_coverage if photo_used else None, "mean_confidence": float(pool.mean())}


def confidence(report: dict | None, mean_confidence: float) -> dict:
    """A number in [0, 1] per output: how far to trust it, 1 meaning exact.

    segmentation: s = 2 * mean_confidence - 1, so 0 for coin-flip labels (p = 0.5) and 1 for certain ones.
    A measurement: s / (1 + h / 0.25), h the 95% interval's half-width relative to the value, so an exact
    number keeps s, one known to +-25% gets s / 2, and a value of 0 (no relative precision) gets 0.
    tissue: s times (1 - the mean width of the tissue shares' intervals), shares being fractions of 1.
    The prognosis has none here: its probability is its own statement of uncertainty.
    """
    s = float(np.clip(2.0 * mean_confidence - 1.0, 0.0, 1.0))
    out: dict[str, float | None] = {"segmentation": s}
    intervals = {} if report is None else report["uncertainty"]
    for name in MEASUREMENTS:
        if name not in intervals:
            out[name] = None
            continue
        low, high = intervals[name]
        relative = 0.5 * (high - low) / max(abs(report[name]), 1e-12)
        out[name] = s / (1.0 + relative / HALF_CONFIDENCE_WIDTH)
    shares = intervals.get("tissue")
    out["tissue"] = None if not shares else s * (1.0 - float(np.mean([hi - lo for lo, hi in shares.values()])))
    return out


def _prognosis(ensemble: Ensemble, history: History | None, report: dict | None) -> dict | None:
    """The prognosis model's output for this wound, or None without history, model or the wound's size.

    history: a DataFrame in the pyfunc's own input form (a `frame` column of first_visit / sequence rows), passed
    as it is; or one mapping of first-visit features (the prognosis_gbm_v1 columns, wound_id included), where
    area_cm2, volume_cm3 and depth_mm (the max depth), when absent, are taken from this scan's measurements.
    """
    if history is None or ensemble.prognosis is None:
        return None
    if isinstance(history, pd.DataFrame):
        frame = history
    else:
        row = dict(history)
        for column, measured in PROGNOSIS_MEASUREMENTS.items():
            if column not in row and report is not None:
                row[column] = report[measured]
        if any(column not in row for column in PROGNOSIS_MEASUREMENTS):
            return None  # a prognosis without the wound's size would be a guess from risk factors alone
        frame = pd.DataFrame([{"frame": "first_visit", **row}])
    if "wound_id" not in frame:
        raise ValueError("the prognosis history needs the wound's 'wound_id'")
    table = ensemble.prognosis.predict(frame)
    return {str(k): v for k, v in table.iloc[0].to_dict().items()}


def json_ready(value: Any) -> Any:
    """`value` with numpy scalars and arrays as Python numbers and lists, tuples as lists, NaN and inf as None."""
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [json_ready(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
