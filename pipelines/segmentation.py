"""The pipeline's segmentation steps as plain functions: train a network, score it and the champion, register.

Registered models (aliases champion / challenger, models.registry), both MLflow pytorch models:
- coherency-points: PointNet++ (wound and tissue per point), gated on wound IoU over held-out phantoms, made
  with a seed the training scans never used;
- coherency-photos: the photo U-Net, gated on mean Dice over the FUSeg test split (photos neither trained on
  nor used to pick the checkpoint).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

POINTS, PHOTOS = "coherency-points", "coherency-photos"
REGISTERED = {"pointnet": POINTS, "unet": PHOTOS}
GATE_METRIC = {POINTS: "wound_iou", PHOTOS: "dice"}
CHECKPOINT = {"pointnet": "pointnet-best.ckpt", "unet": "unet-best.ckpt"}
REQUIREMENTS = ["torch==2.13.0", "pytorch-lightning>=2.4,<3", "coherency"]
HOLDOUT_SEED_OFFSET = 7919  # held-out phantoms: the training seed plus this, so no scan repeats


class MissingData(RuntimeError):
    """A step's input is absent; the message says how to make it."""


def _network(network: str) -> str:
    if network not in REGISTERED:
        raise ValueError(f"unknown network {network!r}; the segmentation steps train {', '.join(REGISTERED)}")
    return REGISTERED[network]


def _params(root: Path, network: str, profile: str):
    from features.params import load_params
    from models.lit.photos import PhotoTrainParams
    from models.lit.points import PointTrainParams

    kind = PhotoTrainParams if network == "unet" else PointTrainParams
    return kind.from_params(load_params(network, profile, root / "params.yaml"))


def train(repo: str, profile: str, network: str, out_dir: str) -> Path:
    """Train `network` from params.yaml on data/ into out_dir; returns the best checkpoint."""
    from models.lit.photos import train_photo_segmenter
    from models.lit.points import train_point_segmenter

    _network(network)
    root = Path(repo)
    params = _params(root, network, profile)
    if network == "unet":
        photos = root / "data" / "photos"
        if not (photos / "images").is_dir():
            raise MissingData(f"{photos} has no images/; import FUSeg with 'coherency data import-photos DIR' "
                              "or make stand-ins with 'coherency data generate' (phantoms.standin_photos > 0)")
        checkpoint = train_photo_segmenter(photos, Path(out_dir), params, enable_progress_bar=False)
    else:
        checkpoint = train_point_segmenter(root / "data" / "phantoms", out_dir, params, enable_progress_bar=False)
    return checkpoint


# ---------------------------------------------------------------------------------------------- scoring


def load_checkpoint(network: str, checkpoint: Path):
    """The trained module, on the CPU in eval mode: the U-Net itself, or the PointNet++ LightningModule."""
    from models.lit.points import PointSegmenter
    from models.segment import load_unet_checkpoint

    if network == "unet":
        return load_unet_checkpoint(checkpoint)[0]
    return PointSegmenter.load_from_checkpoint(checkpoint, map_location="cpu").eval()


def model_metadata(network: str, params, root: Path = Path(".")) -> dict:
    """What inference needs beside the weights (photo size, or point-feature settings); the U-Net's photo source.

    photo_source: fuseg, or synthetic (stand-ins rendered from phantoms: its scores say nothing about real photos).
    """
    from coherency.photos import photo_source

    if network == "unet":
        return {"network": network, "size": params.size, "photo_source": photo_source(root / "data" / "photos")}
    return {"network": network, "params": asdict(params)}


def held_out_scans(root: Path, profile: str, n: int, out_dir: Path) -> list[Path]:
    """Phantoms from a seed the training data never used (the profile's mix of shapes, sensors and textures)."""
    from coherency.photos import phantom_textures
    from features.params import load_params
    from features.phantoms import PhantomConfig, write_phantoms

    config = phantom_textures(PhantomConfig.from_params(load_params("phantoms", profile, root / "params.yaml")), root)
    folder = out_dir / "held-out-phantoms"
    if not any(folder.glob("*.ply")):  # new model and champion are scored on the same scans
        folder.mkdir(parents=True, exist_ok=True)
        write_phantoms(n, folder, config.seed + HOLDOUT_SEED_OFFSET, config)
    return sorted(folder.glob("*.ply"))


def score(root: Path, profile: str, network: str, module, metadata: dict, out_dir: Path) -> dict:
    """The metrics the gate compares: test-split Dice for the U-Net, held-out wound IoU for PointNet++."""
    from models.data.photos import photo_split
    from models.lit.points import PointTrainParams, evaluate_point_segmenter
    from models.segment import photo_scores

    if network == "unet":
        train_params = _params(root, network, profile)
        split = photo_split(root / "data" / "photos", train_params.val_fraction, train_params.test_fraction)
        return photo_scores(module, int(metadata["size"]), split["test"] or split["val"])
    params = PointTrainParams.from_params(metadata["params"])  # the settings the model was trained with
    scans = held_out_scans(root, profile, _params(root, network, profile).holdout_scans, out_dir)
    return evaluate_point_segmenter(module, scans, params)


def evaluate(repo: str, profile: str, network: str, model_dir: str, out_dir: str) -> dict:
    """Score the new model and, on the same photos or scans, the champion; saves scores.json and gate.json."""
    from models import registry

    name, root, out = _network(network), Path(repo), Path(out_dir)
    params = _params(root, network, profile)
    checkpoint = Path(model_dir) / CHECKPOINT[network]
    metadata = model_metadata(network, params, root)
    new = score(root, profile, network, load_checkpoint(network, checkpoint), metadata, out)
    registry.use_store(root / "mlruns")
    champion = None
    if registry.alias_version(name, registry.CHAMPION) is not None:
        module, metadata = load_registered(name, registry.CHAMPION)
        champion = score(root, profile, network, module, metadata, out)
    metric = GATE_METRIC[name]
    result = {"challenger": new[metric], "champion": None if champion is None else champion[metric],
              "metric": metric}
    save_json(out / "scores.json", {"new": new, "champion": champion})
    save_json(out / "gate.json", result)
    return {**result, "metrics": new}


def load_registered(name: str, alias: str):
    """A registered segmentation model (the module) and the metadata it was logged with."""
    import mlflow

    uri = f"models:/{name}@{alias}"
    return mlflow.pytorch.load_model(uri, map_location="cpu").eval(), mlflow.models.get_model_info(uri).metadata


# ---------------------------------------------------------------------------------------------- registering


def register(repo: str, profile: str, network: str, model_dir: str, evaluation_dir: str, data_version: str) -> str:
    """Log the network as an MLflow pytorch model with its metrics and provenance; register it as challenger."""
    import mlflow

    from models import registry

    name, root = _network(network), Path(repo)
    scores = json.loads((Path(evaluation_dir) / "scores.json").read_text())["new"]
    metrics = {k: float(v) for k, v in scores.items() if isinstance(v, int | float)}
    registry.use_store(root / "mlruns")
    metadata = model_metadata(network, _params(root, network, profile), root)
    sources = {"photo_source": metadata["photo_source"]} if "photo_source" in metadata else {}
    tags = {**registry.provenance(root, root / "params.yaml"), "data_version": data_version, **sources}
    module = load_checkpoint(network, Path(model_dir) / CHECKPOINT[network])
    with mlflow.start_run(experiment_id=registry.experiment_id(network, root / "mlruns")):
        mlflow.log_metrics(metrics)
        mlflow.log_params(sources)
        mlflow.set_tags(tags)
        # pickle (the module with its class from the installed project), not MLflow 3's default pt2 export,
        # which traces forward() on an example input at one fixed point count
        info = mlflow.pytorch.log_model(module, name=network, serialization_format="pickle",
                                        pip_requirements=REQUIREMENTS, metadata=metadata)
    return registry.register(info.model_uri, name, {GATE_METRIC[name]: metrics[GATE_METRIC[name]]}, tags)


def save_json(path: Path, values: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values, indent=2, default=float))
