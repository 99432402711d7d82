"""The pipeline's model steps as plain functions: train one network, evaluate against the champion, register.

Registered models (aliases champion / challenger, models.registry):
- coherency-prognosis: XGBoost + the visit Transformer + their fusion (one pyfunc bundle), gated on the
  fused week-4 AUROC on the held-out test patients.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from pipelines import segmentation

PROGNOSIS = "coherency-prognosis"
GATE_METRIC = {PROGNOSIS: "auroc_week4", **segmentation.GATE_METRIC}
REGISTERED_MODELS = tuple(GATE_METRIC)
PROGNOSIS_CODE = Path(__file__).resolve().parents[1] / "models" / "mlflow_models" / "prognosis.py"
REQUIREMENTS = ["torch==2.13.0", "pytorch-lightning>=2.4,<3", "xgboost-cpu>=2.1", "pandas>=2.1", "coherency"]


def train(repo: str, profile: str, network: str, out_dir: str) -> dict:
    """Train `network` (gbm or sequence) from params.yaml into out_dir; returns flat metrics and its score."""
    from models.prognosis import train_from_params

    if network not in ("gbm", "sequence"):
        raise ValueError(f"unknown network {network!r}; the pipeline trains gbm and sequence")
    root = Path(repo)
    metrics = train_from_params(network, root / "data", out_dir, profile, root / "params.yaml",
                                enable_progress_bar=False)
    week = "week_0" if network == "gbm" else "week_4"
    auroc = float(metrics[week]["models"][network]["auroc"])
    return {"metrics": {f"auroc_{week}": auroc, f"brier_{week}": float(metrics[week]["models"][network]["brier"])},
            "score": auroc}


def evaluate_prognosis(repo: str, profile: str, gbm_dir: str, sequence_dir: str, out_dir: str) -> dict:
    """Fuse and score the new models and, on the same test patients, the champion's; returns both scores."""
    from features.params import load_params
    from models import registry
    from models.prognosis import SEQUENCE_CHECKPOINT, PrognosisSplit, evaluate_saved

    root = Path(repo)
    split = PrognosisSplit.from_params(load_params("prognosis", profile, root / "params.yaml"))
    new = evaluate_saved(root / "data", gbm_dir, Path(sequence_dir) / SEQUENCE_CHECKPOINT, Path(out_dir) / "new",
                         split)
    registry.use_store(root / "mlruns")
    champion = None
    if registry.alias_version(PROGNOSIS, registry.CHAMPION) is not None:
        bundle = _download(f"models:/{PROGNOSIS}@{registry.CHAMPION}", Path(out_dir) / "champion-bundle")
        old = evaluate_saved(root / "data", bundle / "gbm", bundle / "sequence", Path(out_dir) / "champion", split)
        champion = _score(old)
    result = {"challenger": _score(new), "champion": champion, "metrics": new}
    save_json(Path(out_dir) / "gate.json", {k: result[k] for k in ("challenger", "champion")})
    return result


def _score(metrics: dict) -> float:
    return float(metrics["week_4"]["models"]["ensemble"]["auroc"])


def _download(uri: str, into: Path) -> Path:
    """The champion bundle as files: layout/gbm (folder) and layout/sequence (checkpoint)."""
    import mlflow
    import yaml

    shutil.rmtree(into, ignore_errors=True)
    local = Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(into)))
    # the pyfunc flavour records where each named artifact went inside the model folder
    named = yaml.safe_load((local / "MLmodel").read_text())["flavors"]["python_function"]["artifacts"]
    layout = into / "layout"
    layout.mkdir(parents=True, exist_ok=True)
    shutil.copytree(local / named["gbm"]["path"], layout / "gbm")
    shutil.copyfile(local / named["sequence"]["path"], layout / "sequence")
    return layout


def register_prognosis(repo: str, gbm_dir: str, sequence_dir: str, fusion_json: str, metrics: dict,
                       data_version: str) -> str:
    """Log the bundle as an MLflow pyfunc (models-from-code) and register it as the challenger."""
    import mlflow

    from models import registry
    from models.prognosis import SEQUENCE_CHECKPOINT

    root = Path(repo)
    registry.use_store(root / "mlruns")
    artifacts = {"gbm": gbm_dir, "sequence": str(Path(sequence_dir) / SEQUENCE_CHECKPOINT), "fusion": fusion_json}
    tags = {**registry.provenance(root, root / "params.yaml"), "data_version": data_version}
    with mlflow.start_run(experiment_id=registry.experiment_id("prognosis", root / "mlruns")):
        mlflow.log_metrics({"auroc_week4": _score(metrics)})
        mlflow.set_tags(tags)
        info = mlflow.pyfunc.log_model(name="prognosis", python_model=str(PROGNOSIS_CODE), artifacts=artifacts,
                                       pip_requirements=REQUIREMENTS)
    return registry.register(info.model_uri, PROGNOSIS, {"auroc_week4": _score(metrics)}, tags)


def promote(repo: str, name: str, version: str, challenger: float, champion: float | None) -> dict:
    """The gate: champion alias to `version` only if it beats the champion's score on the same set."""
    from models import registry

    registry.use_store(Path(repo) / "mlruns")
    decision = registry.gate(name, version, GATE_METRIC[name], challenger, champion)
    return {"promoted": decision.promoted, "reason": decision.reason}


def promote_evaluated(repo: str, name: str, version: str, evaluation_dir: str) -> dict:
    """promote() with the two scores the evaluation step saved beside its report."""
    scores = json.loads((Path(evaluation_dir) / "gate.json").read_text())
    return promote(repo, name, version, scores["challenger"], scores["champion"])


def save_json(path: str | Path, values: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(values, indent=2, default=float))
