"""A tiny real ensemble (untrained, seeded PointNet++ and U-Net), its registration as champions in an MLflow store,
and the limb phantom the tests assess."""

from __future__ import annotations

import pytest
import torch

from features.phantoms import Phantom, PhantomConfig, make_phantom
from models.lit.photos import PhotoTrainParams
from models.lit.points import PointTrainParams
from models.unet import UNet, UNetConfig
from serving.ensemble import Ensemble

TINY_POINTNET = {"strides": (4, 4), "radii": (0.2, 0.4), "neighbours": (8, 8), "sa_channels": ((16, 16), (16, 32)),
                 "fp_channels": ((32,), (16,)), "head_channels": 16}
TINY_PARAMS = PointTrainParams(net=TINY_POINTNET, n_points=1024, precision="32-true")
TINY_PHOTO_SIZE = 64


def tiny_ensemble(with_unet: bool = True, **kwargs) -> Ensemble:
    """Untrained networks with fixed seeds: near-random labels, real code paths."""
    torch.manual_seed(0)
    points = TINY_PARAMS.model()
    unet = UNet(UNetConfig(base_width=4, depth=2)) if with_unet else None
    return Ensemble(points, TINY_PARAMS, unet, TINY_PHOTO_SIZE if with_unet else None,
                    versions={"coherency-points": "7"}, data_version="md5-of-data", **kwargs)


def register_champion(store, network: str, module, data_version: str) -> str:
    """What pipelines.segmentation.register and the gate do, without the pipeline's checkpoint and evaluation folder.

    network: "pointnet" or "unet"; the version is logged with the metadata the pipeline gives it.
    """
    import mlflow

    from models import registry
    from pipelines.segmentation import GATE_METRIC, REGISTERED, REQUIREMENTS, model_metadata

    params = TINY_PARAMS if network == "pointnet" else PhotoTrainParams(size=TINY_PHOTO_SIZE)
    name = REGISTERED[network]
    registry.use_store(store)
    with mlflow.start_run(experiment_id=registry.experiment_id(network, store)):
        info = mlflow.pytorch.log_model(module, name=network, serialization_format="pickle",
                                        pip_requirements=REQUIREMENTS, metadata=model_metadata(network, params))
    tags = {"data_version": data_version, "git_commit": "test", "params": "{}"}
    version = registry.register(info.model_uri, name, {GATE_METRIC[name]: 0.5}, tags)
    registry.gate(name, version, GATE_METRIC[name], 0.5, None)
    return version


def register_points_champion(store, module, data_version: str) -> str:
    return register_champion(store, "pointnet", module, data_version)


@pytest.fixture(scope="session")
def limb_phantom() -> Phantom:
    # ~196k points, ~2,700 wound points, procedural texture (no dependence on data/)
    return make_phantom(1, PhantomConfig(texture="procedural", photos_dir=None), seed=5)
