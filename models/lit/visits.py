"""Training of the visit-sequence Transformer: 12-week BCE + a discrete-time hazard likelihood with censoring.

The hazard head gives h_j = P(closure at the visit of week j | still open through week j - 1), j = 1..H. A wound
whose closure was seen at week t contributes log h_t + sum_{j<t} log(1 - h_j); one censored at week c (still open
at its last visit) contributes sum_{j<=c} log(1 - h_j), so censored wounds inform the model without a label.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

from features.params import from_section
from models.data.visits import PREDICTION_WEEKS, VisitArrays, VisitDataModule
from models.lit.trainer import adamw_one_cycle, check_optimiser, trainer_kwargs
from models.sequence import SequenceConfig, VisitTransformer

HORIZON_WEEKS = 12


def hazard_nll(hazard_logits: torch.Tensor, weeks: torch.Tensor, closed: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood per sample (B,) of closure week / censoring week under weekly hazards (B, H)."""
    horizon = hazard_logits.shape[1]
    closed = closed & (weeks <= horizon)  # closure after the last bin: censored at the horizon
    weeks = weeks.clamp(0, horizon)
    bins = torch.arange(1, horizon + 1, device=weeks.device)  # the week each bin ends
    # open through every week before the closure week, or through the censoring week itself
    survived = bins[None, :] < (weeks + (~closed).long())[:, None]  # (B, H)
    log_open = (F.logsigmoid(-hazard_logits) * survived).sum(1)
    log_close = F.logsigmoid(hazard_logits).gather(1, (weeks - 1).clamp(min=0)[:, None]).squeeze(1)
    return -(log_open + closed * log_close)


def survival_curve(hazard_logits: torch.Tensor) -> torch.Tensor:
    """(B, H) -> (B, H) P(still open after week j), j = 1..H."""
    return torch.exp(torch.cumsum(F.logsigmoid(-hazard_logits), dim=1))


def survival_summary(hazard_logits: torch.Tensor, horizon: int = HORIZON_WEEKS) -> dict[str, torch.Tensor]:
    """P(closed by `horizon` weeks), restricted mean weeks open within the hazard's span, and median weeks."""
    survival = survival_curve(hazard_logits)  # (B, H)
    reached = survival <= 0.5
    median = torch.where(reached.any(1), reached.float().argmax(1).float() + 1, torch.full_like(survival[:, 0],
                                                                                                 float("inf")))
    return {"p_closed_by_horizon": 1 - survival[:, horizon - 1],
            "restricted_mean_weeks": 1 + survival[:, :-1].sum(1),  # E[min(T, H)] = sum_{t=0}^{H-1} P(T > t)
            "median_weeks": median}


def healing_bce(logits: torch.Tensor, healed_12w: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy over the samples whose 12-week label is known (NaN: unknown)."""
    known = ~torch.isnan(healed_12w)
    losses = F.binary_cross_entropy_with_logits(logits.float(), torch.nan_to_num(healed_12w), reduction="none")
    return (losses * known).sum() / known.sum().clamp(min=1)


class VisitPrognosis(pl.LightningModule):
    """VisitTransformer with its two losses and optimiser."""

    def __init__(self, net: dict, lr: float = 3e-3, weight_decay: float = 1e-2, survival_weight: float = 0.25,
                 warmup_fraction: float = 0.1) -> None:
        super().__init__()
        check_optimiser(lr, warmup_fraction, weight_decay=weight_decay, survival_weight=survival_weight)
        self.save_hyperparameters()
        self.net = VisitTransformer(SequenceConfig(**net))

    def forward(self, static: torch.Tensor, visits: torch.Tensor,
                padding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net(static, visits, padding)

    def _losses(self, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        static, visits, padding, healed_12w, weeks, closed = batch
        logits, hazards = self(static, visits, padding)
        return healing_bce(logits, healed_12w), hazard_nll(hazards.float(), weeks, closed).mean()

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        bce, nll = self._losses(batch)
        loss = bce + self.hparams.survival_weight * nll
        self.log("train_loss", loss, prog_bar=True, batch_size=len(batch[0]))
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        bce, nll = self._losses(batch)
        size = len(batch[0])
        self.log("val_loss", bce + self.hparams.survival_weight * nll, prog_bar=True, batch_size=size)
        self.log_dict({"val_bce": bce, "val_hazard_nll": nll}, batch_size=size)

    def configure_optimizers(self) -> dict:
        return adamw_one_cycle(self)


@torch.no_grad()
def predict_visits(model: VisitPrognosis, arrays: VisitArrays, batch_size: int = 2048) -> dict[str, np.ndarray]:
    """Numpy predictions per sample: p_healed_12w (the 12-week head) and the hazard head's summaries."""
    model.eval()
    inputs = arrays.tensors()[:3]
    outputs: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(arrays.static), batch_size):
        batch = [t[start:start + batch_size].to(model.device) for t in inputs]
        logits, hazards = model(*batch)
        summary = {"p_healed_12w": torch.sigmoid(logits.float()), **survival_summary(hazards.float())}
        for name, value in summary.items():
            outputs.setdefault(name, []).append(value.cpu().numpy())
    return {name: np.concatenate(parts).astype(float) for name, parts in outputs.items()}


@dataclass(frozen=True)
class SequenceTrainParams:
    """The `sequence` section of params.yaml."""

    prediction_weeks: tuple[int, ...] = PREDICTION_WEEKS
    d_model: int = 32
    heads: int = 4
    layers: int = 2
    feedforward: int = 64
    dropout: float = 0.1
    batch_size: int = 128
    epochs: int = 40
    patience: int = 8  # early stopping on the validation loss
    lr: float = 3e-3
    weight_decay: float = 1e-2
    survival_weight: float = 0.25
    precision: str = "32-true"  # a model this small gains nothing from bf16
    threads: int = 1  # torch CPU threads; 2 ran 15x slower than 1 on the shared 2-core machine
    seed: int = 2026

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.patience < 1 or self.threads < 1:
            raise ValueError(f"sequence: epochs, patience and threads must be at least 1, got {self.epochs}, "
                             f"{self.patience}, {self.threads}")
        if not self.prediction_weeks or min(self.prediction_weeks) < 0:
            raise ValueError(f"sequence.prediction_weeks must be non-negative weeks, got {self.prediction_weeks}")

    @classmethod
    def from_params(cls, section: dict) -> SequenceTrainParams:
        return from_section(cls, section, "sequence")

    def model(self, data: VisitDataModule) -> VisitPrognosis:
        net = SequenceConfig(data.static_features, data.visit_features, self.d_model, self.heads, self.layers,
                             self.feedforward, self.dropout)
        return VisitPrognosis(net.to_dict(), self.lr, self.weight_decay, self.survival_weight)


def train_visit_model(data: VisitDataModule, out_dir: str | Path, params: SequenceTrainParams,
                      **trainer_overrides) -> VisitPrognosis:
    """Fit on the train split, stop early on the validation loss; returns the best epoch's model."""
    torch.set_num_threads(params.threads)
    pl.seed_everything(params.seed, workers=True)
    model = params.model(data)
    best = ModelCheckpoint(dirpath=out_dir, filename="sequence-best", monitor="val_loss", mode="min", save_top_k=1,
                           enable_version_counter=False)
    stop = EarlyStopping(monitor="val_loss", mode="min", patience=params.patience)
    options = {**trainer_kwargs(params.precision), "max_epochs": params.epochs, "callbacks": [best, stop],
               "logger": False, "enable_model_summary": False, **trainer_overrides}
    pl.Trainer(**options).fit(model, datamodule=data)
    if not best.best_model_path:  # fast_dev_run saves no checkpoint
        return model
    return VisitPrognosis.load_from_checkpoint(best.best_model_path, map_location="cpu")
