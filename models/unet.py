"""U-Net for binary wound segmentation of a photo (plain PyTorch; the architecture only).

Ronneberger et al., U-Net (MICCAI 2015): an encoder of conv blocks and 2x downsamplings, a decoder that
upsamples and concatenates the encoder's feature map of the same scale (the skip connection).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

NORMS = ("batch", "group")
UPSAMPLINGS = ("bilinear", "transpose")


@dataclass(frozen=True)
class UNetConfig:
    """Hyperparameters of the U-Net; every field is checked in __post_init__."""

    in_channels: int = 3
    out_channels: int = 1  # one logit per pixel: wound vs not wound
    base_width: int = 16  # channels of the first level; each deeper level doubles them
    depth: int = 4  # number of 2x downsamplings; inputs are padded to a multiple of 2**depth
    dropout: float = 0.0  # channel dropout at the bottleneck
    norm: str = "batch"  # batch | group
    groups: int = 8  # GroupNorm groups (when norm == "group"); must divide base_width
    upsampling: str = "bilinear"  # bilinear | transpose

    def __post_init__(self) -> None:
        for name in ("in_channels", "out_channels", "base_width", "depth", "groups"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"UNetConfig.{name} must be a positive integer, got {value!r}")
        if self.depth > 7:
            raise ValueError(f"UNetConfig.depth must be at most 7 (a 128x downsampling), got {self.depth}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"UNetConfig.dropout must be in [0, 1), got {self.dropout}")
        if self.norm not in NORMS:
            raise ValueError(f"UNetConfig.norm must be one of {NORMS}, got {self.norm!r}")
        if self.upsampling not in UPSAMPLINGS:
            raise ValueError(f"UNetConfig.upsampling must be one of {UPSAMPLINGS}, got {self.upsampling!r}")
        if self.norm == "group" and self.base_width % self.groups:
            raise ValueError(f"UNetConfig.groups ({self.groups}) must divide base_width ({self.base_width})")

    def widths(self) -> list[int]:
        """Channels at each level, from the full-resolution level to the bottleneck."""
        return [self.base_width * 2**level for level in range(self.depth + 1)]

    def to_dict(self) -> dict:
        return asdict(self)


def _norm(config: UNetConfig, channels: int) -> nn.Module:
    if config.norm == "group":
        return nn.GroupNorm(config.groups, channels)
    return nn.BatchNorm2d(channels)


class ConvBlock(nn.Sequential):
    """Two (3x3 conv, norm, ReLU) layers; the conv has no bias since the norm adds one."""

    def __init__(self, config: UNetConfig, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            _norm(config, out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            _norm(config, out_channels),
            nn.ReLU(inplace=True),
        )


class UpBlock(nn.Module):
    """Upsample 2x, concatenate the skip connection, then a ConvBlock."""

    def __init__(self, config: UNetConfig, in_channels: int, out_channels: int) -> None:
        super().__init__()
        if config.upsampling == "transpose":
            self.up = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)
        else:
            # bilinear upsampling then a 1x1 conv to halve the channels: cheaper, no checkerboard artefacts
            self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                                    nn.Conv2d(in_channels, out_channels, 1, bias=False))
        self.conv = ConvBlock(config, 2 * out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)  # (B, C_out, 2H, 2W)
        return self.conv(torch.cat([x, skip], dim=1))  # (B, 2 C_out, 2H, 2W) -> (B, C_out, 2H, 2W)


class UNet(nn.Module):
    """Image (B, in_channels, H, W) -> logits (B, out_channels, H, W), for any H and W."""

    def __init__(self, config: UNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or UNetConfig()
        widths = self.config.widths()
        self.stem = ConvBlock(self.config, self.config.in_channels, widths[0])
        self.down = nn.ModuleList(ConvBlock(self.config, w_in, w_out) for w_in, w_out in pairwise(widths))
        self.dropout = nn.Dropout2d(self.config.dropout)
        self.up = nn.ModuleList(UpBlock(self.config, w_in, w_out) for w_in, w_out in pairwise(widths[::-1]))
        self.head = nn.Conv2d(widths[0], self.config.out_channels, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.ndim != 4 or image.shape[1] != self.config.in_channels:
            raise ValueError(f"expected an image batch (B, {self.config.in_channels}, H, W), got {tuple(image.shape)}")
        height, width = image.shape[-2:]
        multiple = 2**self.config.depth
        # pad bottom/right to a multiple of 2**depth so every skip matches its upsampled partner
        pad_h, pad_w = -height % multiple, -width % multiple
        x = F.pad(image, (0, pad_w, 0, pad_h))  # (B, C_in, H', W')
        skips = [self.stem(x)]  # level 0: (B, base, H', W')
        for block in self.down:
            skips.append(block(F.max_pool2d(skips[-1], 2)))  # level l: (B, base 2^l, H' / 2^l, W' / 2^l)
        x = self.dropout(skips.pop())  # bottleneck: (B, base 2^depth, H' / 2^depth, W' / 2^depth)
        for block in self.up:
            x = block(x, skips.pop())
        return self.head(x)[..., :height, :width]  # (B, out_channels, H, W)
