"""A tiny real ensemble (untrained, seeded PointNet++ and U-Net) and the limb phantom the tests assess."""

from __future__ import annotations

import pytest
import torch

from features.phantoms import Phantom, PhantomConfig, make_phantom
from models.lit.points import PointTrainParams
from models.unet import UNet, UNetConfig
from serving.ensemble import Ensemble

TINY_POINTNET = {"strides": (4, 4), "radii": (0.2, 0.4), "neighbours": (8, 8), "sa_channels": ((16, 16), (16, 32)),
                 "fp_channels": ((32,), (16,)), "head_channels": 16}
TINY_PARAMS = PointTrainParams(net=TINY_POINTNET, n_points=1024, precision="32-true")


def tiny_ensemble(with_unet: bool = True, **kwargs) -> Ensemble:
    """Untrained networks with fixed seeds: near-random labels, real code paths."""
    torch.manual_seed(0)
    points = TINY_PARAMS.model()
    unet = UNet(UNetConfig(base_width=4, depth=2)) if with_unet else None
    return Ensemble(points, TINY_PARAMS, unet, 64 if with_unet else None,
                    versions={"coherency-points": "7"}, data_version="md5-of-data", **kwargs)


@pytest.fixture(scope="session")
def limb_phantom() -> Phantom:
    # ~196k points, ~2,700 wound points, procedural texture (no dependence on data/)
    return make_phantom(1, PhantomConfig(texture="procedural", photos_dir=None), seed=5)
