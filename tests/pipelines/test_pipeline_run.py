"""The whole training pipeline, end to end through kfp's local runner, on the `tiny` profile of a fresh project."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from coherency.photos import PROVENANCE, SYNTHETIC

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
    return root  # no data/photos: the ingest step renders stand-ins, as on a machine without FUSeg


def test_tiny_pipeline_versions_validates_trains_registers_and_promotes(project):
    from models import registry
    from pipelines.modelling import PROGNOSIS
    from pipelines.run import run_local

    version = run_local(project, "tiny")
    assert (project / "data.dvc").is_file() and (project / "data" / "phantoms").is_dir()
    assert json.loads((project / "data" / "photos" / PROVENANCE).read_text())["source"] == SYNTHETIC
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
        # the photo model says it learnt from synthetic stand-ins, not FUSeg
        assert rows[0]["photo_source"] == ("synthetic" if network == "unet" else None)
        assert sum(p.numel() for p in module.parameters()) > 10_000


def test_segment_photos_uses_the_champion_unet(project, tmp_path):
    if not (project / "mlruns").is_dir():
        pytest.fail("the pipeline test above must run first (same module fixture)")
    cli = Path(sys.executable).parent / "coherency"
    done = subprocess.run([str(cli), "segment-photos", "data/photos/images", str(tmp_path / "masks")], cwd=project,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    masks = sorted((tmp_path / "masks").glob("*.png"))
    assert len(masks) == 8 and Image.open(masks[0]).size == (512, 512)  # phantoms.profiles.tiny.standin_photos
