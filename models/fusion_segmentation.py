"""Segmentation fusion: PointNet++ per-point probabilities + the U-Net's photo probability map -> fused labels.

Pure numpy functions (no I/O, no models), shared by serving and evaluation; models.ensemble re-exports them.
The photo speaks only for points its camera saw: inside the image, in front of the camera and not hidden
behind nearer surface (a z-buffer over small pixel cells). Elsewhere the point network decides alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np
from scipy.special import expit

from features.io import TISSUE_CLASSES, Camera, Scan
from models.photo_projection import Occlusion, probability_map, project_points, sample_photo_probability
from models.wound_growth import Growth, grow_wound


@dataclass(frozen=True)
class FusionConfig:
    """Weights of the log-odds sum, the label threshold and the photo's occlusion test.

    fused logit = weight_points * logit(p_points) + weight_photo * logit(p_photo), both probabilities clipped
    to [clip, 1 - clip] so that neither model can veto the other with a 0 or a 1. Equal weights of 1 are the
    naive-Bayes product of two independent experts; fit them on held-out scans to calibrate.
    """

    weight_points: float = 1.0
    weight_photo: float = 1.0
    clip: float = 1e-3
    threshold: float = 0.5
    occlusion: Occlusion = field(default_factory=Occlusion)

    def __post_init__(self) -> None:
        numbers = {k: getattr(self, k) for k in ("weight_points", "weight_photo", "clip", "threshold")}
        bad = [k for k, v in numbers.items() if not (isinstance(v, int | float) and np.isfinite(v))]
        if bad:
            raise ValueError(f"FusionConfig: {', '.join(bad)} must be finite numbers, got {numbers}")
        if min(self.weight_points, self.weight_photo) < 0 or self.weight_points + self.weight_photo == 0:
            raise ValueError("FusionConfig: weights must be >= 0 and not both 0, got "
                             f"weight_points={self.weight_points}, weight_photo={self.weight_photo}")
        if not 0 < self.clip < 0.5:
            raise ValueError(f"FusionConfig: clip must be in (0, 0.5), got {self.clip}")
        if not 0 < self.threshold < 1:
            raise ValueError(f"FusionConfig: threshold must be in (0, 1), got {self.threshold}")
        if not isinstance(self.occlusion, Occlusion):
            raise ValueError(f"FusionConfig: occlusion must be an Occlusion, got {type(self.occlusion).__name__}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> FusionConfig:
        """From a params-style mapping (occlusion as a nested mapping); an unknown key is an error."""
        nested = values.get("occlusion", {})
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        unknown += [f"occlusion.{k}" for k in sorted(set(nested) - {f.name for f in fields(Occlusion)})]
        if unknown:
            raise ValueError(f"FusionConfig: unknown key(s) {', '.join(unknown)}")
        numbers = {k: float(v) for k, v in values.items() if k != "occlusion"}
        occlusion = Occlusion(**{k: float(v) for k, v in nested.items()})
        return cls(**numbers, occlusion=occlusion)


# ------------------------------------------------------------------------------------------------ fusion


def fuse_wound_probability(point_prob: np.ndarray, photo_prob: np.ndarray,
                           config: FusionConfig | None = None) -> np.ndarray:
    """Fused wound probability (N,): a weighted sum of logits; the point probability where photo_prob is NaN."""
    config = config or FusionConfig()
    point_prob = _probabilities(point_prob, "point_prob")
    photo_prob = np.asarray(photo_prob, dtype=float)
    if photo_prob.shape != point_prob.shape:
        raise ValueError(f"photo_prob has shape {photo_prob.shape}, point_prob {point_prob.shape}; give one of each "
                         "per point (NaN where the photo did not see the point)")
    seen = ~np.isnan(photo_prob)
    if not ((photo_prob[seen] >= 0) & (photo_prob[seen] <= 1)).all():
        raise ValueError("photo_prob must lie in [0, 1] (or be NaN where the photo did not see the point)")
    fused = point_prob.copy()
    z = config.weight_points * _logit(point_prob[seen], config.clip) \
        + config.weight_photo * _logit(photo_prob[seen], config.clip)
    fused[seen] = expit(z)
    return fused


def _logit(p: np.ndarray, clip: float) -> np.ndarray:
    p = np.clip(p, clip, 1.0 - clip)
    return np.log(p) - np.log1p(-p)


@dataclass(frozen=True)
class SegmentationFusion:
    """Fused per-point segmentation of one scan."""

    wound_prob: np.ndarray  # (N,) fused P(wound)
    label: np.ndarray  # (N,) uint8: 1 where wound_prob >= threshold
    tissue: np.ndarray | None  # (N,) uint8: argmax tissue class on wound points, 0 elsewhere; None without probs
    photo_prob: np.ndarray  # (N,) the photo's P(wound) at each point, NaN where the photo did not see it
    confidence: np.ndarray  # (N,) max(p, 1 - p) of the fused probability
    photo_coverage: float  # share of fused wound points the photo saw (0.0 when there is no wound point)


def fuse_segmentation(scan: Scan, point_wound_prob: np.ndarray, point_tissue_prob: np.ndarray | None,
                      photo_prob_map: np.ndarray | None, camera: Camera | None,
                      config: FusionConfig | None = None, growth: Growth | None = None) -> SegmentationFusion:
    """Fuse the point network's and the photo network's wound probabilities for every point of `scan`.

    point_wound_prob: (N,) P(wound) (column 1 of features.point_chunks.predict_scan's wound head);
    point_tissue_prob: (N, 5) tissue class probabilities or None; photo_prob_map: the U-Net's (H, W) map of
    the scan's photo (models.segment.predict_probabilities) with the photo's camera, or both None; growth:
    when given, the fused wound then grows into adjacent points below the skin (models.wound_growth).
    """
    config = config or FusionConfig()
    n = len(scan)
    point_wound_prob = _probabilities(point_wound_prob, "point_wound_prob", (n,))
    if point_tissue_prob is not None:
        point_tissue_prob = _probabilities(point_tissue_prob, "point_tissue_prob", (n, len(TISSUE_CLASSES)))
    photo_prob = _photo_at_points(scan, photo_prob_map, camera, config)
    fused = fuse_wound_probability(point_wound_prob, photo_prob, config)
    wound = fused >= config.threshold
    if growth is not None:
        wound = grow_wound(scan.points, wound, growth)
    tissue = None
    if point_tissue_prob is not None:
        tissue = np.where(wound, point_tissue_prob.argmax(axis=1), 0).astype(np.uint8)
    seen = ~np.isnan(photo_prob)
    coverage = float(seen[wound].mean()) if wound.any() else 0.0
    return SegmentationFusion(fused, wound.astype(np.uint8), tissue, photo_prob, np.maximum(fused, 1.0 - fused),
                              coverage)


def _photo_at_points(scan: Scan, prob_map: np.ndarray | None, camera: Camera | None,
                     config: FusionConfig) -> np.ndarray:
    """The photo's P(wound) at each point (NaN where unseen); all NaN without a photo."""
    if (prob_map is None) != (camera is None):
        raise ValueError("give the photo probability map and its camera together, or neither "
                         f"(got a map: {prob_map is not None}, a camera: {camera is not None})")
    if prob_map is None:
        return np.full(len(scan), np.nan)
    prob_map = probability_map(prob_map)
    if prob_map.shape != (camera.height, camera.width):
        raise ValueError(f"the photo probability map is {prob_map.shape[1]}x{prob_map.shape[0]} pixels but the "
                         f"camera's image is {camera.width}x{camera.height}; predict at the photo's own size")
    pixels, _, visible = project_points(scan.points, camera, config.occlusion)
    return sample_photo_probability(prob_map, pixels, visible)


def labelled_scan(scan: Scan, fused: SegmentationFusion) -> Scan:
    """A copy of `scan` with label and tissue replaced by the fused ones, ready for features.measure.measure."""
    if len(fused.label) != len(scan):
        raise ValueError(f"the fusion has {len(fused.label)} labels but the scan {len(scan)} points")
    copy = {k: None if getattr(scan, k) is None else getattr(scan, k).copy() for k in ("points", "colors", "normals")}
    tissue = None if fused.tissue is None else fused.tissue.copy()
    return replace(scan, **copy, label=fused.label.copy(), tissue=tissue, extra=dict(scan.extra))


# ------------------------------------------------------------------------------------------------ checks


def _probabilities(values: np.ndarray, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    if shape is not None and values.shape != shape:
        raise ValueError(f"{name} has shape {values.shape}; expected {shape} (one row per scan point)")
    if shape is None and values.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError(f"{name} holds {int((~np.isfinite(values)).sum())} NaN or infinite value(s)")
    if values.size and (values.min() < 0 or values.max() > 1):
        raise ValueError(f"{name} must lie in [0, 1], found {values.min():.3g}..{values.max():.3g}")
    return values
