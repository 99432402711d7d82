"""The whole training pipeline, end to end through kfp's local runner, on the `tiny` profile of a fresh project."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A project folder with the repository's params.yaml and .dvcignore, under its own DVC repo (no git)."""
    root = tmp_path_factory.mktemp("project")
    for name in ("params.yaml", ".dvcignore"):
        shutil.copyfile(ROOT / name, root / name)
    dvc = [sys.executable, "-m", "dvc"]
    subprocess.run([*dvc, "init", "--no-scm", "-q"], cwd=root, check=True)
    subprocess.run([*dvc, "config", "core.analytics", "false"], cwd=root, check=True)
    subprocess.run([*dvc, "config", "core.site_cache_dir", str(root / "site_cache")], cwd=root, check=True)
    return root


def test_tiny_pipeline_versions_validates_trains_registers_and_promotes(project):
    from models import registry
    from pipelines.modelling import PROGNOSIS
    from pipelines.run import run_local

    version = run_local(project, "tiny")
    assert (project / "data.dvc").is_file() and (project / "data" / "phantoms").is_dir()
    registry.use_store(project / "mlruns")
    rows = registry.versions(PROGNOSIS)
    assert [r["version"] for r in rows] == [version]
    assert set(rows[0]["aliases"]) == {registry.CHAMPION, registry.CHALLENGER}
    data_version = (project / "data.dvc").read_text().split("md5: ")[1].split()[0]
    assert rows[0]["data_version"] == data_version
    assert 0.5 < rows[0]["metrics"]["auroc_week4"] <= 1.0
    reports = list((project / "results" / "pipeline").rglob("index.md"))
    assert reports, "the validate step saves its Great Expectations report as an artifact"
