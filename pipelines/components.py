"""Thin typed kfp components over pipelines.steps; each imports the installed project inside its body.

No `from __future__ import annotations` here: kfp reads the real annotation types.

kfp serialises each function's source into the component, so the imports live inside the functions.
BASE_IMAGE is the project's image on a cluster (Dockerfile at the root); the local runner ignores it.
"""

from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Metrics, Model, Output

BASE_IMAGE = "ghcr.io/coherency/coherency:0.1.0"

def component(func):
    """A lightweight component that runs in the project's own environment (no per-step pip install)."""
    return dsl.component(func, base_image=BASE_IMAGE, install_kfp_package=False)

@component
def ingest(repo: str, profile: str, photos: str, data: Output[Dataset]) -> str:
    """Make data/ where missing and version it with DVC; returns the data version."""
    from pipelines import steps

    summary = steps.ingest(repo, profile, photos)
    steps.write_json(data.path, summary)
    data.metadata.update(summary)
    return summary["data_version"]

@component
def validate(repo: str, profile: str, data: Input[Dataset], report: Output[Markdown]) -> int:
    """Great Expectations over data/; a failing suite stops the run after writing its report."""
    from pipelines import steps

    return steps.validate(repo, profile, report.path)["suites"]

@component
def features(repo: str, online: str, suites: int, table: Output[Dataset]) -> str:
    """Feast apply + materialise (after validation passed `suites` suites)."""
    from pipelines import steps

    summary = steps.build_features(repo, online)
    steps.write_json(table.path, summary)
    return summary["materialized_until"]

@component
def train(repo: str, profile: str, network: str, features_ready: str, model: Output[Model],
          metrics: Output[Metrics]) -> float:
    """Train one network (gbm or sequence) into the model artifact; returns its own held-out AUROC."""
    from pipelines import modelling

    result = modelling.train(repo, profile, network, model.path)
    for name, value in result["metrics"].items():
        metrics.log_metric(name, value)
    return result["score"]

@component
def evaluate_prognosis(repo: str, profile: str, gbm: Input[Model], sequence: Input[Model], metrics: Output[Metrics],
                       evaluation: Output[Dataset]) -> bool:
    """The fused new models and the champion bundle on the same test patients; True when the new ones win.

    One plain output on purpose: kfp's local runner resolves only a task's single `Output` in a condition.
    """
    from pipelines import modelling

    result = modelling.evaluate_prognosis(repo, profile, gbm.path, sequence.path, evaluation.path)
    metrics.log_metric("auroc_week4", result["challenger"])
    if result["champion"] is not None:
        metrics.log_metric("champion_auroc_week4", result["champion"])
    return result["champion"] is None or result["challenger"] > result["champion"]


@component
def register_prognosis(repo: str, gbm: Input[Model], sequence: Input[Model], evaluation: Input[Dataset],
                       data_version: str) -> str:
    """Log the bundle to MLflow and register it as the challenger; returns its version."""
    import json
    from pathlib import Path

    from pipelines import modelling

    new = Path(evaluation.path) / "new"
    metrics = json.loads((new / "prognosis_metrics.json").read_text())
    return modelling.register_prognosis(repo, gbm.path, sequence.path, str(new / "fusion.json"), metrics,
                                        data_version)

@component
def train_segmenter(repo: str, profile: str, network: str, suites: int, model: Output[Model]):
    """Train PointNet++ (phantoms) or the U-Net (photos), after validation passed, into the model artifact."""
    from pipelines import segmentation

    segmentation.train(repo, profile, network, model.path)


@component
def evaluate_segmenter(repo: str, profile: str, network: str, model: Input[Model], metrics: Output[Metrics],
                       evaluation: Output[Dataset]) -> bool:
    """The new network and the champion on the same held-out photos or scans; True when the new one wins."""
    from pipelines import segmentation

    result = segmentation.evaluate(repo, profile, network, model.path, evaluation.path)
    for name, value in result["metrics"].items():
        if isinstance(value, int | float):
            metrics.log_metric(name, value)
    return result["champion"] is None or result["challenger"] > result["champion"]


@component
def register_segmenter(repo: str, profile: str, network: str, model: Input[Model], evaluation: Input[Dataset],
                       data_version: str) -> str:
    """Log the network to MLflow (pytorch flavour) and register it as the challenger; returns its version."""
    from pipelines import segmentation

    return segmentation.register(repo, profile, network, model.path, evaluation.path, data_version)


@component
def promote(repo: str, name: str, version: str, evaluation: Input[Dataset]) -> str:
    """Move the champion alias to `version` (runs only under the gate's dsl.If); returns the reason."""
    from pipelines import modelling

    return modelling.promote_evaluated(repo, name, version, evaluation.path)["reason"]
