"""The champion ensemble held in memory: PointNet++ (required), the photo U-Net and the prognosis bundle (optional).

`Ensemble.from_registry` loads `models:/NAME@champion` for each registered name (pipelines.segmentation,
pipelines.modelling) and records which version it got and the data version the point model was trained on,
so that every assessment can say which models made it.
"""

from __future__ import annotations

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
        points, point_params = _load_points(alias, found[POINTS])
        unet, unet_size = _load_photos(alias) if found[PHOTOS] else (None, None)
        prognosis = _load_prognosis(alias) if found[PROGNOSIS] else None
        return cls(points, point_params, unet, unet_size, prognosis, fusion or FusionConfig(),
                   versions={name: v for name, v in found.items() if v is not None},
                   data_version=_data_version(POINTS, found[POINTS]))


def _load_points(alias: str, version: str) -> tuple[PointSegmenter, PointTrainParams]:
    from pipelines.segmentation import load_registered

    module, metadata = load_registered(POINTS, alias)
    try:
        params = PointTrainParams.from_params(dict((metadata or {})["params"]))
    except (KeyError, TypeError, ValueError) as e:
        raise ModelNotReady(f"{POINTS} v{version} lacks usable point-feature settings in its metadata ({e}); "
                            "register it again with this version of the project") from e
    return module, params


def _load_photos(alias: str) -> tuple[UNet, int]:
    from pipelines.segmentation import load_registered

    module, metadata = load_registered(PHOTOS, alias)
    if not metadata or "size" not in metadata:
        raise ModelNotReady(f"{PHOTOS}@{alias} has no input 'size' in its metadata; register it again")
    return module, int(metadata["size"])


def _load_prognosis(alias: str) -> Any:
    import mlflow

    return mlflow.pyfunc.load_model(f"models:/{PROGNOSIS}@{alias}")


def _data_version(name: str, version: str) -> str:
    """The data_version tag of one registered version ('unknown' when it was registered without one)."""
    from models import registry

    for row in registry.versions(name):
        if row["version"] == version:
            return row["data_version"] or UNKNOWN
    return UNKNOWN
