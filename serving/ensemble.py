"""The champion ensemble held in memory: PointNet++ (required), the photo U-Net and the prognosis bundle (optional).

`Ensemble.from_registry` loads `models:/NAME@champion` for each registered name (pipelines.segmentation,
pipelines.modelling) and records which version it got and the data version the point model was trained on,
so that every assessment can say which models made it. On a cluster the same artifacts arrive in a folder
(`from_directory`, see serving.manifests); `load_ensemble` picks whichever the environment describes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from models.fusion_segmentation import FusionConfig
from models.lit.points import PointSegmenter, PointTrainParams
from models.unet import UNet
from pipelines.modelling import PROGNOSIS
from pipelines.segmentation import PHOTOS, POINTS

MODEL_NAMES = (POINTS, PHOTOS, PROGNOSIS)
UNKNOWN = "unknown"


class ModelNotReady(RuntimeError):
    """A model the ensemble needs is not registered (or not usable); the message says which and how to make it."""


@dataclass
class Ensemble:
    """The models one assessment runs, with the registry versions they came from.

    points: the PointNet++ LightningModule and point_params the feature settings it was trained with (voxel,
    radii, chunk size); unet and unet_size: the photo U-Net and its square input side, both None without a
    photo model; prognosis: the `coherency-prognosis` pyfunc (anything with .predict(DataFrame)), or None.
    """

    points: PointSegmenter
    point_params: PointTrainParams
    unet: UNet | None = None
    unet_size: int | None = None
    prognosis: Any | None = None
    fusion: FusionConfig = field(default_factory=FusionConfig)
    versions: dict[str, str] = field(default_factory=dict)  # registered name -> version
    data_version: str = UNKNOWN

    def __post_init__(self) -> None:
        if (self.unet is None) != (self.unet_size is None):
            raise ValueError("Ensemble: give the U-Net and its input size together, or neither "
                             f"(got a U-Net: {self.unet is not None}, a size: {self.unet_size})")
        if self.unet_size is not None and self.unet_size < 1:
            raise ValueError(f"Ensemble: unet_size must be a positive number of pixels, got {self.unet_size}")
        self.points.eval()
        if self.unet is not None:
            self.unet.eval()

    @property
    def device(self) -> torch.device:
        return self.points.device

    def to(self, device: str | torch.device | None = None) -> Ensemble:
        """Move the torch models to `device` (default: CUDA when available, else the CPU); returns self."""
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.points.to(device)
        if self.unet is not None:
            self.unet.to(device)
        return self

    @classmethod
    def from_registry(cls, store: Path = Path("mlruns"), alias: str = "champion",
                      fusion: FusionConfig | None = None, required: Iterable[str] = (POINTS,)) -> Ensemble:
        """Load `models:/NAME@alias` for the point, photo and prognosis models from the MLflow store.

        Names in `required` must be registered under `alias` (ModelNotReady otherwise); the others are
        loaded when present and left None when not. MLFLOW_TRACKING_URI, when set, overrides `store`.
        """
        from models import registry

        required = tuple(required)
        unknown = sorted(set(required) - set(MODEL_NAMES))
        if unknown:
            raise ValueError(f"unknown model name(s) {', '.join(unknown)}; choose from {', '.join(MODEL_NAMES)}")
        registry.use_store(Path(store))
        found = {name: registry.alias_version(name, alias) for name in MODEL_NAMES}
        missing = [name for name in required if found[name] is None]
        if missing:
            raise ModelNotReady(f"no {', '.join(f'{n}@{alias}' for n in missing)} in the registry at "
                                f"{registry.tracking_uri(Path(store))}; run 'coherency pipeline run' to train and "
                                "register the models")
        if found[POINTS] is None:
            raise ModelNotReady(f"no {POINTS}@{alias}: the assessment cannot run without the point network")
        uris = {name: f"models:/{name}@{alias}" for name, version in found.items() if version is not None}
        return cls.from_uris(uris, {name: v for name, v in found.items() if v is not None},
                             _data_version(POINTS, found[POINTS]), fusion)

    @classmethod
    def from_directory(cls, root: Path, versions: dict[str, str] | None = None, data_version: str = UNKNOWN,
                       fusion: FusionConfig | None = None) -> Ensemble:
        """Load the models from root/NAME folders (MLflow model artifacts, as KServe's storage initializer
        copies them; see serving.manifests); root/coherency-points is required, the others optional."""
        uris = {name: str(root / name) for name in MODEL_NAMES if (root / name / "MLmodel").is_file()}
        if POINTS not in uris:
            raise ModelNotReady(f"no MLflow model in {root / POINTS}: the assessment cannot run without the "
                                "point network")
        versions = versions or {}
        return cls.from_uris(uris, {name: versions.get(name, UNKNOWN) for name in uris}, data_version, fusion)

    @classmethod
    def from_uris(cls, uris: dict[str, str], versions: dict[str, str], data_version: str = UNKNOWN,
                  fusion: FusionConfig | None = None) -> Ensemble:
        """Load each model from its MLflow URI (models:/..., runs:/..., a local folder); points is required."""
        points, point_params = _load_points(uris[POINTS], versions.get(POINTS, UNKNOWN))
        unet, unet_size = _load_photos(uris[PHOTOS]) if PHOTOS in uris else (None, None)
        prognosis = _load_prognosis(uris[PROGNOSIS]) if PROGNOSIS in uris else None
        return cls(points, point_params, unet, unet_size, prognosis, fusion or FusionConfig(),
                   versions=dict(versions), data_version=data_version)


def load_ensemble(store: Path = Path("mlruns"), alias: str = "champion", root: Path | None = None) -> Ensemble:
    """The ensemble a server process serves: from `root` (default COHERENCY_MODEL_ROOT) when given, the storage
    mount of a cluster pod, with COHERENCY_MODEL_VERSIONS (JSON) and COHERENCY_DATA_VERSION from the manifest;
    else the champions in the registry at `store`."""
    root = root or (Path(os.environ["COHERENCY_MODEL_ROOT"]) if os.environ.get("COHERENCY_MODEL_ROOT") else None)
    if root is None:
        return Ensemble.from_registry(store, alias)
    try:
        versions = json.loads(os.environ.get("COHERENCY_MODEL_VERSIONS") or "{}")
    except json.JSONDecodeError as e:
        raise ModelNotReady(f"COHERENCY_MODEL_VERSIONS is not JSON ({e}); the manifest sets it") from e
    return Ensemble.from_directory(root, versions, os.environ.get("COHERENCY_DATA_VERSION", UNKNOWN))


def _load_torch(uri: str) -> tuple[Any, dict | None]:
    """A logged segmentation network (eval mode, on the CPU) and the metadata it was logged with."""
    import mlflow

    return mlflow.pytorch.load_model(uri, map_location="cpu").eval(), mlflow.models.get_model_info(uri).metadata


def _load_points(uri: str, version: str) -> tuple[PointSegmenter, PointTrainParams]:
    module, metadata = _load_torch(uri)
    try:
        params = PointTrainParams.from_params(dict((metadata or {})["params"]))
    except (KeyError, TypeError, ValueError) as e:
        raise ModelNotReady(f"{POINTS} v{version} lacks usable point-feature settings in its metadata ({e}); "
                            "register it again with this version of the project") from e
    return module, params


def _load_photos(uri: str) -> tuple[UNet, int]:
    module, metadata = _load_torch(uri)
    if not metadata or "size" not in metadata:
        raise ModelNotReady(f"{PHOTOS} at {uri} has no input 'size' in its metadata; register it again")
    return module, int(metadata["size"])


def _load_prognosis(uri: str) -> Any:
    import mlflow

    return mlflow.pyfunc.load_model(uri)


def _data_version(name: str, version: str) -> str:
    """The data_version tag of one registered version ('unknown' when it was registered without one)."""
    from models import registry

    for row in registry.versions(name):
        if row["version"] == version:
            return row["data_version"] or UNKNOWN
    return UNKNOWN
