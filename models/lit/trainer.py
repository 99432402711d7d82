"""Trainer settings every network shares: the GPU when there is one, bf16 where the hardware computes in it."""

from __future__ import annotations

import torch

PRECISIONS = ("auto", "32-true", "bf16-mixed")


def auto_precision() -> str:
    """bf16-mixed on CUDA with bf16 and on CPUs with AVX512-BF16 or AMX; fp32 elsewhere."""
    if torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "32-true"
    native_bf16 = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return "bf16-mixed" if native_bf16 else "32-true"


def trainer_kwargs(precision: str = "auto") -> dict:
    """accelerator, devices, precision and determinism for `pl.Trainer(**trainer_kwargs(), ...)`."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    cuda = torch.cuda.is_available()
    return {
        "accelerator": "gpu" if cuda else "cpu",
        "devices": 1,
        "precision": auto_precision() if precision == "auto" else precision,
        # on CPU every op is deterministic at no cost; on CUDA deterministic kernels made a U-Net step 5-8x
        # slower on an H200 (6.7 -> 33 ms at 256 px), so GPU runs are seeded but not bitwise repeatable
        "deterministic": not cuda,
        "benchmark": cuda,
    }


def check_optimiser(lr: float, warmup_fraction: float, **non_negative: float) -> None:
    """ValueError unless lr > 0, 0 < warmup_fraction < 1 and every named weight (decay, loss weights) >= 0."""
    if lr <= 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if not 0 < warmup_fraction < 1:
        raise ValueError(f"warmup_fraction must be in (0, 1), got {warmup_fraction}")
    negative = {name: value for name, value in non_negative.items() if value < 0}
    if negative:
        raise ValueError(f"must be >= 0: {negative}")


def adamw_one_cycle(module) -> dict:
    """AdamW with a one-cycle schedule stepped per batch, from the module's lr, weight_decay, warmup_fraction."""
    hp = module.hparams
    optimizer = torch.optim.AdamW(module.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=hp.lr, total_steps=max(int(module.trainer.estimated_stepping_batches), 1),
        pct_start=hp.warmup_fraction)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
