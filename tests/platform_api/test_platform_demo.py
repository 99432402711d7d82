"""What `make run` ends with (coherency.platform_demo): demo accounts, a scan submitted through `coherency api`,
which calls the real serving stack, and the assessment, dressings and next appointment printed."""

from __future__ import annotations

import json

import pytest

from coherency.platform_demo import ensure_accounts, run_demo
from platform_api.settings import Settings
from tests.platform_api.live import free_port, start_api, stop
from tests.platform_api.test_assessments import phantom, served  # noqa: F401 - fixtures

pytestmark = pytest.mark.timeout(300)


def test_demo_submits_a_scan_and_prints_what_the_platform_did(tmp_path, served, phantom, capsys):  # noqa: F811
    stem = tmp_path / "limb"
    stem.with_suffix(".ply").write_bytes(phantom.scan)
    stem.with_suffix(".png").write_bytes(phantom.photo)
    (tmp_path / "limb.camera.json").write_bytes(phantom.camera)
    # what the phantom generator writes, identifiers included (the demo must not send them)
    (tmp_path / "limb.meta.json").write_text(json.dumps({"device": "phantom sensor", "body_site": "lower leg",
                                                         "patient_id": "P0000", "wound_id": "W0000"}))
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'platform.db'}", storage_url=str(tmp_path / "objects"),
                        serving_url=served)
    ensure_accounts(settings.database_url)
    ensure_accounts(settings.database_url)  # a second `make run` finds them and goes on
    port = free_port()
    process = start_api(settings, port, tmp_path / "api.log")
    try:
        run_demo(f"http://127.0.0.1:{port}", stem, None)
        run_demo(f"http://127.0.0.1:{port}", stem, None)  # again: catalogue and diary are there, still works
    finally:
        stop(process)
    printed = capsys.readouterr().out
    assert printed.count("  assessment ") == 2 and "area_cm2" in printed
    assert "  dressing " in printed
    assert "follow-up every 7 days" in printed  # no prognosis (no feature key): weekly until the trend says more
    assert "next appointment: 20" in printed  # a slot from the demo clinician's diary
