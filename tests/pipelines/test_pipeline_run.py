"""The whole training pipeline, end to end through kfp's local runner, on the `tiny` profile of a fresh project."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

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
    write_photos(root / "data" / "photos", 12)
    return root


def write_photos(folder: Path, n: int, side: int = 80) -> None:
    """Photos in the FUSeg layout: a reddish ellipse (the wound) on skin tones, with its 0/255 mask."""
    rng = np.random.default_rng(5)
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir(parents=True)
    rows, cols = np.mgrid[:side, :side]
    for i in range(n):
        cy, cx, ry, rx = rng.uniform(25, 55), rng.uniform(25, 55), rng.uniform(8, 18), rng.uniform(8, 18)
        wound = ((rows - cy) / ry) ** 2 + ((cols - cx) / rx) ** 2 <= 1
        skin = np.array([210, 160, 130]) * rng.uniform(0.6, 1.1)
        photo = np.where(wound[..., None], [150, 40, 45], skin) + rng.normal(0, 8, (side, side, 3))
        Image.fromarray(photo.clip(0, 255).astype(np.uint8)).save(folder / "images" / f"{i:04d}.jpg")
        Image.fromarray((wound * 255).astype(np.uint8)).save(folder / "labels" / f"{i:04d}.png")


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


def test_tiny_pipeline_registers_both_segmenters_with_their_gate_metric(project):
    from models import registry
    from pipelines.segmentation import GATE_METRIC, REGISTERED, load_registered

    if not (project / "mlruns").is_dir():
        pytest.fail("the pipeline test above must run first (same module fixture)")
    registry.use_store(project / "mlruns")
    for network, name in REGISTERED.items():
        rows = registry.versions(name)
        assert len(rows) == 1 and set(rows[0]["aliases"]) == {registry.CHAMPION, registry.CHALLENGER}, name
        assert 0.0 <= rows[0]["metrics"][GATE_METRIC[name]] <= 1.0
        module, metadata = load_registered(name, registry.CHAMPION)
        assert metadata["network"] == network
        assert sum(p.numel() for p in module.parameters()) > 10_000


def test_segment_photos_uses_the_champion_unet(project, tmp_path):
    if not (project / "mlruns").is_dir():
        pytest.fail("the pipeline test above must run first (same module fixture)")
    cli = Path(sys.executable).parent / "coherency"
    done = subprocess.run([str(cli), "segment-photos", "data/photos/images", str(tmp_path / "masks")], cwd=project,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    masks = sorted((tmp_path / "masks").glob("*.png"))
    assert len(masks) == 12 and Image.open(masks[0]).size == (80, 80)
