"""Ensemble fusion, pure functions (numpy in, numpy out, no I/O) shared by serving and evaluation.

Sections: prognosis fusion (XGBoost + visit Transformer -> one calibrated P(healed within 12 weeks)), here;
segmentation fusion (PointNet++ per-point + U-Net photo wound probabilities -> fused labels), re-exported
from models.fusion_segmentation and models.photo_projection.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.special import expit

from models.fusion_segmentation import (
    FusionConfig,
    SegmentationFusion,
    fuse_segmentation,
    fuse_wound_probability,
    labelled_scan,
)
from models.photo_projection import Occlusion, Projection, project_points, sample_photo_probability

__all__ = [
    "FusionConfig", "Occlusion", "PrognosisFusion", "Projection", "SegmentationFusion", "fit_prognosis_fusion",
    "fuse_prognosis", "fuse_segmentation", "fuse_wound_probability", "labelled_scan", "project_points",
    "sample_photo_probability",
]

# ------------------------------------------------------------------------------------------------ prognosis

PROBABILITY_CLIP = 1e-6  # keeps logits finite for a model that is certain (a wound already closed: p = 1)
NEWTON_STEPS, NEWTON_TOLERANCE = 50, 1e-10


@dataclass(frozen=True)
class PrognosisFusion:
    """Logistic stacking: logit p = intercept + weight_gbm logit p_gbm + weight_sequence logit p_seq."""

    intercept: float
    weight_gbm: float
    weight_sequence: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> PrognosisFusion:
        return cls(**{k: float(values[k]) for k in ("intercept", "weight_gbm", "weight_sequence")})


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), PROBABILITY_CLIP, 1 - PROBABILITY_CLIP)
    return np.log(p) - np.log1p(-p)


def _design(p_gbm: np.ndarray, p_seq: np.ndarray) -> np.ndarray:
    """(N, 3): a column of ones and the two logits."""
    p_gbm, p_seq = np.asarray(p_gbm, dtype=float), np.asarray(p_seq, dtype=float)
    if p_gbm.shape != p_seq.shape or p_gbm.ndim != 1:
        raise ValueError(f"p_gbm and p_seq must be 1-D arrays of one length, got {p_gbm.shape} and {p_seq.shape}")
    if not (np.isfinite(p_gbm).all() and np.isfinite(p_seq).all()):
        raise ValueError("probabilities must be finite")
    return np.column_stack([np.ones_like(p_gbm), _logit(p_gbm), _logit(p_seq)])


def fit_prognosis_fusion(p_gbm: np.ndarray, p_seq: np.ndarray, healed: np.ndarray,
                         ridge: float = 1e-3) -> PrognosisFusion:
    """Fit the stacking weights by penalised maximum likelihood (Newton's method) on held-out predictions.

    Fit on a split neither model trained on (the validation split): on training rows both models look more
    certain than they are. ridge: L2 penalty on the two weights (not the intercept), for separable data.
    """
    x, y = _design(p_gbm, p_seq), np.asarray(healed, dtype=float)
    if y.shape != x[:, 0].shape or not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("healed must be 0/1 labels, one per prediction")
    if len(np.unique(y)) < 2 or ridge < 0:
        raise ValueError("fusion needs both outcomes among the labels and ridge >= 0")
    penalty = np.diag([0.0, ridge, ridge]) * len(y)
    beta = np.zeros(3)
    for _ in range(NEWTON_STEPS):
        p = expit(x @ beta)
        gradient = x.T @ (p - y) + penalty @ beta
        hessian = (x * (p * (1 - p))[:, None]).T @ x + penalty + 1e-9 * np.eye(3)
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.abs(step).max() < NEWTON_TOLERANCE:
            break
    return PrognosisFusion(*(float(b) for b in beta))


def fuse_prognosis(params: PrognosisFusion, p_gbm: np.ndarray, p_seq: np.ndarray) -> np.ndarray:
    """The fused, calibrated P(healed within 12 weeks), one per pair of predictions."""
    z = _design(p_gbm, p_seq) @ np.array([params.intercept, params.weight_gbm, params.weight_sequence])
    return expit(z)
