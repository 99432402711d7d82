"""The MLflow registry: the only module that knows MLflow. Versions are addressed by alias, never by stage.

A new version is registered as `challenger`; it becomes `champion` only when it beats the current champion
on the same evaluation set (the caller evaluates both and passes the two numbers). Every version carries
the data version (data.dvc's hash), the git commit and the params it was trained with, as tags.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

CHAMPION, CHALLENGER = "champion", "challenger"
DEFAULT_STORE = Path("mlruns")


# mlflow.set_tracking_uri also exports MLFLOW_TRACKING_URI, which subprocesses (kfp steps, servers) inherit. The
# store use_store chose is named in this variable too, so that it is never mistaken for a URI the user set.
CHOSEN_STORE_ENV = "COHERENCY_CHOSEN_TRACKING_URI"


def tracking_uri(store: Path = DEFAULT_STORE) -> str:
    """MLFLOW_TRACKING_URI when the user set it (a server), else a SQLite database under `store`."""
    configured = os.environ.get("MLFLOW_TRACKING_URI")
    if configured and configured != os.environ.get(CHOSEN_STORE_ENV):
        return configured
    return f"sqlite:///{(store / 'mlflow.db').resolve()}"


def use_store(store: Path = DEFAULT_STORE) -> str:
    """Point MLflow at the tracking store; returns its URI."""
    import mlflow

    store.mkdir(parents=True, exist_ok=True)
    uri = tracking_uri(store)
    if uri != os.environ.get("MLFLOW_TRACKING_URI"):  # not the user's: mark it as ours
        os.environ[CHOSEN_STORE_ENV] = uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def experiment_id(name: str, store: Path = DEFAULT_STORE) -> str:
    """The experiment's id, created with an explicit artifact location under `store` when new."""
    import mlflow

    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    return mlflow.create_experiment(name, artifact_location=(store / "artifacts" / name).resolve().as_uri())


def provenance(repo: Path = Path("."), params_path: Path = Path("params.yaml")) -> dict[str, str]:
    """Tags tying a model to what made it: data version, git commit, params."""
    dvc = repo / "data.dvc"
    outs = (yaml.safe_load(dvc.read_text()) or {}).get("outs", [{}]) if dvc.is_file() else [{}]
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True)
    params = yaml.safe_load(params_path.read_text()) if params_path.is_file() else {}
    return {
        "data_version": str(outs[0].get("md5", "unversioned")),
        "git_commit": commit.stdout.strip() if commit.returncode == 0 else "unknown",
        "params": json.dumps(params, sort_keys=True)[:4500],  # MLflow caps tag values at 5000 characters
    }


def register(model_uri: str, name: str, metrics: dict[str, float], tags: dict[str, str]) -> str:
    """Register `model_uri` (e.g. runs:/ID/model) under `name` as the challenger; returns the version."""
    import mlflow
    from mlflow import MlflowClient

    version = mlflow.register_model(model_uri, name, tags={**tags, **{f"metric.{k}": f"{v:.6g}"
                                                                      for k, v in metrics.items()}})
    MlflowClient().set_registered_model_alias(name, CHALLENGER, version.version)
    return str(version.version)


def alias_version(name: str, alias: str) -> str | None:
    """The version behind `name@alias`, or None when the alias (or the model) does not exist."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return str(MlflowClient().get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


@dataclass(frozen=True)
class Decision:
    """What the champion/challenger gate did, for the pipeline's report."""

    name: str
    challenger: str
    champion_before: str | None
    promoted: bool
    reason: str


def gate(name: str, version: str, metric: str, challenger_score: float, champion_score: float | None,
         higher_is_better: bool = True, min_gain: float = 0.0) -> Decision:
    """Promote `version` to champion if it beats the champion's score on the same evaluation set."""
    from mlflow import MlflowClient

    before = alias_version(name, CHAMPION)
    if before is None or champion_score is None:
        promoted, reason = True, "no champion yet"
    else:
        gain = (challenger_score - champion_score) * (1 if higher_is_better else -1)
        promoted = gain > min_gain
        verdict = "beats" if promoted else "does not beat"
        reason = f"{metric} {challenger_score:.4f} {verdict} champion v{before} ({champion_score:.4f})"
    if promoted:
        MlflowClient().set_registered_model_alias(name, CHAMPION, version)
    MlflowClient().set_model_version_tag(name, version, "gate", reason)
    return Decision(name, version, before, promoted, reason)


def versions(name: str) -> list[dict]:
    """Every version of `name` with its aliases and metric tags, newest first."""
    from mlflow import MlflowClient

    client = MlflowClient()
    rows = []
    for found in client.search_model_versions(f"name = '{name}'"):
        v = client.get_model_version(name, found.version)  # search results leave the aliases out
        rows.append({"version": str(v.version), "aliases": list(v.aliases), "run_id": v.run_id,
                     "metrics": {k[7:]: float(x) for k, x in v.tags.items() if k.startswith("metric.")},
                     "data_version": v.tags.get("data_version"), "git_commit": v.tags.get("git_commit"),
                     "photo_source": v.tags.get("photo_source")})  # photo models: fuseg or synthetic
    return sorted(rows, key=lambda r: int(r["version"]), reverse=True)
