"""Training of the photo U-Net: BCE + soft Dice loss, per-image validation Dice, AdamW with a one-cycle schedule."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.callbacks import ModelCheckpoint

from features.params import from_section
from models.data.photos import AugmentConfig, PhotoDataModule
from models.lit.trainer import PRECISIONS, adamw_one_cycle, check_optimiser, trainer_kwargs
from models.unet import UNet, UNetConfig


def dice_per_image(predicted: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Dice of binary masks (B, 1, H, W) -> (B,); an image with neither predicted nor true wound scores 1."""
    predicted, truth = predicted.flatten(1).float(), truth.flatten(1).float()  # (B, H W)
    overlap = (predicted * truth).sum(1)
    total = predicted.sum(1) + truth.sum(1)
    return torch.where(total > 0, 2 * overlap / total.clamp(min=1), torch.ones_like(total))


def soft_dice_loss(logits: torch.Tensor, masks: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 - soft Dice over the whole batch (pooled, so photos with little or no wound do not dominate)."""
    probs = torch.sigmoid(logits.float())
    overlap = (probs * masks).sum()
    return 1 - (2 * overlap + smooth) / (probs.sum() + masks.sum() + smooth)


class PhotoSegmenter(pl.LightningModule):
    """The U-Net with its loss, metric and optimiser; `size` is the square input side it is trained at."""

    def __init__(self, unet: dict | None = None, size: int = 160, lr: float = 3e-3, weight_decay: float = 1e-4,
                 dice_weight: float = 1.0, warmup_fraction: float = 0.1) -> None:
        super().__init__()
        check_optimiser(lr, warmup_fraction, weight_decay=weight_decay, dice_weight=dice_weight)
        self.save_hyperparameters()
        # channels-last convolutions run about 1.5x faster on this CPU (oneDNN) and on GPUs (cuDNN)
        self.net = UNet(UNetConfig(**(unet or {}))).to(memory_format=torch.channels_last)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Float images (B, 3, H, W) in [0, 1] -> logits (B, 1, H, W)."""
        return self.net(images.contiguous(memory_format=torch.channels_last))

    def _loss(self, logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        bce = F.binary_cross_entropy_with_logits(logits.float(), masks)
        return bce + self.hparams.dice_weight * soft_dice_loss(logits, masks)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, masks = batch
        loss = self._loss(self(images), masks)
        self.log("train_loss", loss, prog_bar=True, batch_size=len(images))
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, masks = batch
        logits = self(images)
        # weighted by batch size, so the epoch value is the mean over images, not over batches
        self.log("val_loss", self._loss(logits, masks), batch_size=len(images))
        predicted, truth = logits > 0, masks > 0.5
        self.log("val_dice", dice_per_image(predicted, truth).mean(), prog_bar=True, batch_size=len(images))
        # pooled over every validation pixel as well: large wounds weigh more, photos without wound nothing
        self._pooled += torch.stack([(predicted & truth).sum(), predicted.sum() + truth.sum()]).double().cpu()

    def on_validation_epoch_start(self) -> None:
        self._pooled = torch.zeros(2, dtype=torch.float64)

    def on_validation_epoch_end(self) -> None:
        overlap, total = self._pooled.tolist()
        self.log("val_dice_pooled", 2 * overlap / total if total else 1.0)

    def configure_optimizers(self) -> dict:
        return adamw_one_cycle(self)


# ---------------------------------------------------------------------------------------------- running it


def photo_trainer(max_epochs: int, precision: str = "auto", **kwargs) -> pl.Trainer:
    """A Trainer on the GPU when there is one, in bf16 when the hardware has it (the shared trainer settings)."""
    return pl.Trainer(max_epochs=max_epochs, **trainer_kwargs(precision), **kwargs)


@dataclass(frozen=True)
class PhotoTrainParams:
    """The `unet` section of params.yaml."""

    size: int = 128  # photos are resized to size x size
    crop: int | None = None  # training patches (None: whole photos); inference always sees size x size
    batch_size: int = 8
    epochs: int = 20
    lr: float = 2e-3
    weight_decay: float = 1e-4
    val_fraction: float = 0.12
    test_fraction: float = 0.1  # held out of training and checkpoint selection: the pipeline's test score
    base_width: int = 16
    depth: int = 4
    dropout: float = 0.1
    norm: str = "batch"
    upsampling: str = "bilinear"
    precision: str = "auto"
    seed: int = 2026

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"unet.epochs must be at least 1, got {self.epochs}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unet.precision must be one of {PRECISIONS}, got {self.precision!r}")

    @classmethod
    def from_params(cls, section: dict) -> PhotoTrainParams:
        return from_section(cls, section, "unet")

    def unet_config(self) -> UNetConfig:
        return UNetConfig(base_width=self.base_width, depth=self.depth, dropout=self.dropout, norm=self.norm,
                          upsampling=self.upsampling)


def train_photo_segmenter(photos_dir: Path, out_dir: Path, params: PhotoTrainParams, **trainer_options) -> Path:
    """Train on photos_dir (images/, labels/); returns the checkpoint with the best validation Dice."""
    pl.seed_everything(params.seed, workers=True)
    data = PhotoDataModule(photos_dir, size=params.size, batch_size=params.batch_size,
                           val_fraction=params.val_fraction, augment=AugmentConfig(), crop=params.crop,
                           test_fraction=params.test_fraction)
    model = PhotoSegmenter(unet=params.unet_config().to_dict(), size=params.size, lr=params.lr,
                           weight_decay=params.weight_decay)
    best = ModelCheckpoint(dirpath=out_dir, filename="unet-best", monitor="val_dice", mode="max", save_top_k=1,
                           enable_version_counter=False)
    trainer_options.setdefault("logger", False)
    callbacks = [best, *trainer_options.pop("callbacks", [])]
    trainer = photo_trainer(params.epochs, params.precision, callbacks=callbacks, **trainer_options)
    trainer.fit(model, datamodule=data)
    return Path(best.best_model_path)
