"""Training of the PointNet++ segmenter and its evaluation on whole scans.

Loss: wound cross-entropy + soft Dice, plus class-balanced tissue cross-entropy on points whose tissue is
known. Validation logs wound IoU and tissue mIoU; AdamW with a short warm-up and a cosine schedule.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.callbacks import ModelCheckpoint

from features.io import read_scan
from features.params import from_section
from features.point_chunks import Predictor, predict_scan
from models.data.points import IGNORE, PointDataModule, tissue_targets
from models.lit.trainer import auto_precision, check_optimiser, trainer_kwargs
from models.pointnet import PointNetConfig, PointNetSegmenter


def confusion(predicted: torch.Tensor, target: torch.Tensor, classes: int) -> torch.Tensor:
    """(classes, classes) counts, rows = target, columns = prediction; IGNORE targets are left out."""
    keep = target != IGNORE
    pairs = target[keep] * classes + predicted[keep]
    return torch.bincount(pairs, minlength=classes * classes).view(classes, classes)


def iou_per_class(counts: torch.Tensor | np.ndarray) -> np.ndarray:
    """IoU of each class from a confusion matrix; NaN for a class neither present nor predicted."""
    counts = np.asarray(counts, dtype=np.float64)
    hit = np.diag(counts)
    union = counts.sum(axis=0) + counts.sum(axis=1) - hit
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, hit / union, np.nan)


def tissue_miou(counts: torch.Tensor | np.ndarray) -> float:
    """Mean IoU over the wound tissue classes (1-4) that occur; class 0 (skin, unknown) is left out."""
    per_class = iou_per_class(counts)[1:]
    return float(np.nanmean(per_class)) if np.isfinite(per_class).any() else float("nan")


def soft_dice_loss(wound_logits: torch.Tensor, wound: torch.Tensor) -> torch.Tensor:
    """1 - soft Dice of the wound class over the whole batch (M, 2) logits vs (M,) targets."""
    probs = wound_logits.softmax(-1)[:, 1]
    truth = wound.float()
    return 1.0 - (2.0 * (probs * truth).sum() + 1.0) / (probs.sum() + truth.sum() + 1.0)


def balanced_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with each class present in the batch weighted equally (rare tissues count as much as skin)."""
    known = target[target != IGNORE]
    counts = torch.bincount(known, minlength=logits.shape[-1]).float()
    weight = torch.where(counts > 0, 1.0 / counts.clamp_min(1.0), torch.zeros_like(counts))
    return F.cross_entropy(logits, target, weight=weight, ignore_index=IGNORE)


def compose_probabilities(wound_logits: torch.Tensor, tissue_logits: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Wound probabilities and tissue probabilities consistent with them.

    P(tissue 0) is the wound head's skin probability; P(tissue k) = P(wound) P(k | wound), k = 1..4, from the
    tissue head's classes 1..4. So a point called skin never gets a tissue class.
    """
    wound = wound_logits.float().softmax(-1)
    given_wound = tissue_logits[..., 1:].float().softmax(-1) * wound[..., 1:]
    return wound, torch.cat([wound[..., :1], given_wound], dim=-1)


class PointSegmenter(pl.LightningModule):
    """PointNetSegmenter trained on (features, wound, tissue) chunk batches."""

    def __init__(self, net: dict | None = None, lr: float = 2e-3, weight_decay: float = 1e-2,
                 tissue_weight: float = 0.5, dice_weight: float = 1.0, warmup_fraction: float = 0.05) -> None:
        super().__init__()
        check_optimiser(lr, warmup_fraction, weight_decay=weight_decay, tissue_weight=tissue_weight,
                        dice_weight=dice_weight)
        self.save_hyperparameters()
        self.net = PointNetSegmenter(PointNetConfig.from_dict(net or {}))
        classes = {"wound": self.net.config.wound_classes, "tissue": self.net.config.tissue_classes}
        self.counts = {name: torch.zeros(k, k, dtype=torch.long) for name, k in classes.items()}

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net(features)

    def _step(self, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        features, wound, tissue = batch
        wound_logits, tissue_logits = self(features)
        wound_logits, tissue_logits = wound_logits.flatten(0, 1).float(), tissue_logits.flatten(0, 1).float()
        wound, tissue = wound.flatten(), tissue.flatten()
        loss = F.cross_entropy(wound_logits, wound) + self.hparams.dice_weight * soft_dice_loss(wound_logits, wound)
        # a batch without known tissue (all photo-textured wounds) contributes no tissue loss, not NaN
        tissue_loss = balanced_cross_entropy(tissue_logits, tissue) if (tissue != IGNORE).any() else 0.0
        return loss + self.hparams.tissue_weight * tissue_loss, wound_logits, tissue_logits

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        loss = self._step(batch)[0]
        self.log("train_loss", loss, prog_bar=True, batch_size=len(batch[0]))
        return loss

    def on_validation_epoch_start(self) -> None:
        self.counts = {name: torch.zeros_like(c) for name, c in self.counts.items()}

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        loss, wound_logits, tissue_logits = self._step(batch)
        self.log("val_loss", loss, batch_size=len(batch[0]))
        wound_probs, tissue_probs = compose_probabilities(wound_logits, tissue_logits)
        for name, probs, target in (("wound", wound_probs, batch[1]), ("tissue", tissue_probs, batch[2])):
            self.counts[name] += confusion(probs.argmax(-1), target.flatten(), probs.shape[-1]).cpu()

    def on_validation_epoch_end(self) -> None:
        self.log("val_wound_iou", float(iou_per_class(self.counts["wound"])[1]), prog_bar=True)
        miou = tissue_miou(self.counts["tissue"])
        self.log("val_tissue_miou", 0.0 if math.isnan(miou) else miou, prog_bar=True)

    def configure_optimizers(self) -> dict:
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        warmup = max(int(self.hparams.warmup_fraction * total), 1)

        def factor(step: int) -> float:
            return min(1.0, (step + 1) / warmup) * 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))

        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def numpy_predictor(model: PointSegmenter, precision: str = "auto") -> Predictor:
    """A `features.point_chunks.Predictor`: (B, n, C) float32 -> wound (B, n, 2), tissue (B, n, 5) probabilities."""
    model.eval()
    bf16 = (auto_precision() if precision == "auto" else precision) == "bf16-mixed"

    @torch.no_grad()
    def predict(chunks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = torch.from_numpy(chunks).to(model.device)
        with torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=bf16):
            wound, tissue = compose_probabilities(*model(x))
        return wound.cpu().numpy(), tissue.cpu().numpy()

    return predict


# ---------------------------------------------------------------------------------------------- running it


@dataclass(frozen=True)
class PointTrainParams:
    """The `pointnet` section of params.yaml (lengths in millimetres there, metres here)."""

    seed: int = 2026
    voxel_mm: float = 1.0
    radii_mm: tuple[float, ...] = (4.0, 12.0)
    n_points: int = 4096
    batch_size: int = 8
    chunks_per_scan: int = 16
    val_fraction: float = 0.2
    wound_share: float = 0.5
    epochs: int = 10
    lr: float = 2e-3
    weight_decay: float = 1e-2
    tissue_weight: float = 0.5
    dice_weight: float = 1.0
    precision: str = "auto"
    net: dict = field(default_factory=dict)
    holdout_scans: int = 4  # phantoms of an unused seed that the pipeline scores new and champion models on

    @classmethod
    def from_params(cls, section: dict) -> PointTrainParams:
        return from_section(cls, section, "pointnet")

    @property
    def radii(self) -> tuple[float, ...]:
        return tuple(r * 1e-3 for r in self.radii_mm)

    def data_module(self, data_dir: str | Path, num_workers: int = 0) -> PointDataModule:
        return PointDataModule(data_dir, self.n_points, self.batch_size, self.chunks_per_scan, self.val_fraction,
                               self.voxel_mm * 1e-3, self.radii, self.wound_share, self.seed, num_workers)

    def model(self) -> PointSegmenter:
        net = {**self.net, "in_channels": 9 + 2 * len(self.radii_mm)}
        return PointSegmenter(net, self.lr, self.weight_decay, self.tissue_weight, self.dice_weight)


def train_point_segmenter(data_dir: str | Path, out_dir: str | Path, params: PointTrainParams,
                          **trainer_overrides) -> Path:
    """Train on the labelled scans in data_dir; returns the checkpoint with the best validation wound IoU."""
    pl.seed_everything(params.seed, workers=True)
    data, model = params.data_module(data_dir), params.model()
    best = ModelCheckpoint(dirpath=out_dir, filename="pointnet-best", monitor="val_wound_iou", mode="max",
                           save_top_k=1, enable_version_counter=False)
    options = {**trainer_kwargs(params.precision), "max_epochs": params.epochs, "callbacks": [best],
               "logger": False, **trainer_overrides}
    pl.Trainer(**options).fit(model, datamodule=data)
    return Path(best.best_model_path) if best.best_model_path else Path(out_dir) / "pointnet-best.ckpt"


SLICES = ("sensor", "shape", "texture")  # phantom generator settings the wound IoU is also reported by


def evaluate_point_segmenter(model: PointSegmenter, scan_paths: list[Path], params: PointTrainParams) -> dict:
    """Wound IoU and tissue mIoU over every point of whole scans (pooled), per scan and per slice.

    Slices (`wound_iou.sensor.lidar`, `wound_iou.shape.heel`, ...) pool the scans that share a generator
    setting, read from each phantom's NAME.truth.json; scans without one are in no slice.
    """
    predict = numpy_predictor(model, params.precision)
    totals = {"wound": np.zeros((2, 2), np.int64), "tissue": np.zeros((5, 5), np.int64)}
    per_scan = []
    for path in scan_paths:
        scan = read_scan(path)
        wound, tissue = predict_scan(scan, predict, params.voxel_mm * 1e-3, params.radii, params.n_points,
                                     params.batch_size)
        truth = {"wound": scan.label.astype(np.int64), "tissue": tissue_targets(scan)}
        counts = {name: confusion(torch.from_numpy(probs.argmax(1)), torch.from_numpy(truth[name]), probs.shape[1])
                  for name, probs in (("wound", wound), ("tissue", tissue))}
        for name in totals:
            totals[name] += counts[name].numpy()
        # a scan without known wound tissue (photo texture) has no tissue score of its own
        known = bool((truth["tissue"] > 0).any())
        per_scan.append({"scan": path.stem, "wound_iou": _score(iou_per_class(counts["wound"])[1]),
                         "tissue_miou": _score(tissue_miou(counts["tissue"])) if known else None,
                         "wound_counts": counts["wound"].tolist(), "slice": scan_slices(path)})
    tissue_iou = zip(("granulation", "slough", "necrotic", "epithelialising"), iou_per_class(totals["tissue"])[1:],
                     strict=True)
    return {"wound_iou": _score(iou_per_class(totals["wound"])[1]),
            "tissue_miou": _score(tissue_miou(totals["tissue"])),
            **slice_ious(per_scan),
            "tissue_iou": {name: _score(v) for name, v in tissue_iou}, "scans": per_scan, "params": asdict(params)}


def scan_slices(path: Path) -> dict[str, str]:
    """The phantom's sensor, shape and texture from NAME.truth.json beside the scan; {} without one.

    The generator's names, not NAME.meta.json's free-text device and body site (flat and limb are both
    "lower leg" there).
    """
    truth = path.with_suffix(".truth.json")
    if not truth.is_file():
        return {}
    generator = json.loads(truth.read_text()).get("generator", {})
    return {key: str(generator[key]) for key in SLICES if key in generator}


def slice_ious(per_scan: list[dict]) -> dict[str, float]:
    """Pooled wound IoU of each slice value, as flat metric names: {"wound_iou.sensor.lidar": 0.93, ...}."""
    pooled: dict[str, np.ndarray] = {}
    for row in per_scan:
        for key, value in row["slice"].items():
            name = f"wound_iou.{key}.{value}"
            pooled[name] = pooled.get(name, np.zeros((2, 2), np.int64)) + np.asarray(row["wound_counts"])
    scores = {name: _score(iou_per_class(counts)[1]) for name, counts in sorted(pooled.items())}
    return {name: value for name, value in scores.items() if value is not None}


def _score(value: float) -> float | None:
    """A metric for a JSON report: None where it is undefined (NaN)."""
    return None if math.isnan(value) else float(value)
