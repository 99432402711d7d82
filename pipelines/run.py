"""Run the training pipeline: locally through kfp's SubprocessRunner, or on a Kubeflow cluster."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def run_local(repo: Path, profile: str, photos: str = "", online: str = "sqlite") -> str:
    """Every step as a subprocess of this interpreter (the installed project); returns the registered version."""
    from kfp import local

    from pipelines.training import training

    root = Path(repo).resolve()
    artifacts = root / "results" / "pipeline"
    artifacts.mkdir(parents=True, exist_ok=True)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(artifacts))
    scratch = artifacts / "tmp"  # each step leaves a temp folder behind: keep them here, then remove them
    scratch.mkdir(exist_ok=True)
    before = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(scratch)
    try:
        result = training(repo=str(root), profile=profile, photos=photos, online=online)
    finally:
        os.environ.pop("TMPDIR") if before is None else os.environ.update(TMPDIR=before)
        shutil.rmtree(scratch, ignore_errors=True)
    return str(result.output)


def submit(host: str, repo: str, profile: str, package: Path) -> str:
    """Submit the compiled pipeline to a Kubeflow Pipelines endpoint; returns the run id."""
    import kfp

    client = kfp.Client(host=host)
    run = client.create_run_from_pipeline_package(str(package), arguments={"repo": repo, "profile": profile})
    return run.run_id
