"""Scans through the real serving stack: `coherency serve` in a subprocess (started once) with tiny
champions in a temporary MLflow registry; a phantom submitted through the API, stored, assessed, listed, trended,
reported and exported as FHIR; a service that is down (502, the scan kept) and the retry that assesses it.

The champions are the serving tests' tiny untrained networks, rewired so that the answer is known: PointNet++
says P(wound) = 0.27 at every point, so a point is skin wherever the photo does not speak (and its tissue class is
"unknown", whose probability is the point network's skin probability); the U-Net finds pure red pixels. The test
paints the phantom's wound red in its photo, so the photo marks the wound as a trained U-Net would, and the
served measurements can be held to the phantom's truth.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from fhir.resources.R4B.bundle import Bundle
from PIL import Image
from scipy import ndimage

from features.io import Scan, read_camera, write_camera, write_ply
from features.phantoms import PhantomConfig, make_phantom
from platform_api.assessments.charts import project
from platform_api.assessments.models import Scan as ScanRow
from platform_api.assessments.storage import storage_for
from tests.platform_api.test_assessments_api import stored_assessment
from tests.serving.conftest import register_champion, tiny_ensemble
from tests.serving.test_servers import NAME, child_env, free_port, wait_until_ready

pytestmark = pytest.mark.timeout(300)  # a server that never answers fails the test instead of stalling the suite
DATA_VERSION = "md5-e2e"
CAPTURED = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)


def marked_photo_ensemble():
    """The tiny ensemble with the answer wired in (see the module docstring)."""
    ensemble = tiny_ensemble()
    with torch.no_grad():
        net, unet = ensemble.points.net, ensemble.unet
        net.wound.weight.zero_()
        net.wound.bias.copy_(torch.tensor([0.0, -1.0]))  # softmax: P(wound) = sigmoid(-1) = 0.27
        for parameter in unet.parameters():
            parameter.zero_()
        for norm in (m for m in unet.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            norm.running_mean.zero_(), norm.running_var.fill_(1.0), norm.weight.fill_(1.0)  # identity
        unet.stem[0].weight[0, :2, 1, 1] = torch.tensor([1.0, -1.0])  # channel 0: red - green (in [0, 1] units)
        unet.stem[3].weight[0, 0, 1, 1] = 1.0
        unet.up[-1].conv[0].weight[0, 4, 1, 1] = 1.0  # the decoder passes the skip connection's channel 0 on
        unet.up[-1].conv[3].weight[0, 0, 1, 1] = 1.0
        unet.head.weight[0, 0, 0, 0], unet.head.bias[0] = 40.0, -20.0  # logit > 0 where red - green > 0.5
    return ensemble


# session scope, though only this module uses them: pytest runs every module's SQLite tests before any PostgreSQL
# test (database_url is a parametrized session fixture), so a module-scoped service would start twice
@pytest.fixture(scope="session")
def served(tmp_path_factory) -> str:
    """The transformer's URL, `coherency serve` running the wired champions (as tests/serving/test_servers.py
    starts it, with a body limit that fits the phantom)."""
    with pytest.MonkeyPatch.context() as env:  # mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI: undo it after
        env.delenv("MLFLOW_TRACKING_URI", raising=False)
        yield from _serve(tmp_path_factory.mktemp("serve"))


def _serve(folder: Path):
    registry, ensemble = folder / "mlruns", marked_photo_ensemble()
    register_champion(registry, "pointnet", ensemble.points, DATA_VERSION)
    register_champion(registry, "unet", ensemble.unet, DATA_VERSION)
    ports = {"transformer_port": free_port(), "predictor_port": free_port()}
    params = folder / "params.yaml"
    params.write_text(yaml.safe_dump({"serving": {"model_name": NAME, "host": "127.0.0.1", **ports,
                                                  "registry": str(registry), "max_body_mb": 16}}))
    log = folder / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "coherency", "serve", "--params", str(params)], cwd=folder,
                                   env=child_env(), stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{ports['transformer_port']}"
    try:
        wait_until_ready(url, process, log)
        yield url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(60)


@dataclass(frozen=True)
class Files:
    scan: bytes
    photo: bytes
    camera: bytes
    camera_dict: dict
    mask: np.ndarray  # (H, W) bool: the wound's pixels in the photo
    truth: dict


@pytest.fixture(scope="session")
def phantom(tmp_path_factory) -> Files:
    """A limb phantom (every 8th point, ~25k, no labels: the service must find the wound) with its marked photo."""
    made = make_phantom(1, PhantomConfig(texture="procedural", photos_dir=None), seed=5)
    folder = tmp_path_factory.mktemp("phantom")
    write_ply(folder / "scan.ply", Scan(made.scan.points[::8], colors=made.scan.colors[::8]))
    write_camera(folder / "camera.json", made.camera)
    photo = made.photo.copy()
    photo[made.photo_mask] = (255, 0, 0)
    out = io.BytesIO()
    Image.fromarray(photo).save(out, format="PNG")
    camera = (folder / "camera.json").read_bytes()
    assert read_camera(folder / "camera.json").width == photo.shape[1]
    return Files((folder / "scan.ply").read_bytes(), out.getvalue(), camera, json.loads(camera), made.photo_mask,
                 made.truth)


def submit(client, wound_id, headers, phantom: Files, **metadata):
    files = {"scan": ("limb.ply", phantom.scan, "application/octet-stream"),
             "photo": ("limb.png", phantom.photo, "image/png"),
             "camera": ("camera.json", phantom.camera, "application/json")}  # a file here; a field in the API tests
    meta = {"captured_at": CAPTURED.isoformat(), "device": "phantom sensor", "exudate": "moderate", **metadata}
    return client.post(f"/wounds/{wound_id}/scans", files=files, data={"metadata": json.dumps(meta)}, headers=headers)


def test_a_scan_is_assessed_stored_trended_reported_and_exported(client, auth, world, session, settings, served,
                                                               phantom):
    settings.serving_url, settings.serving_timeout_s = served, 120
    headers = auth(world.clinician)
    # a baseline four weeks earlier, twice the size, so that this scan is the week-4 visit
    baseline = stored_assessment(session, world.wound, world.clinician, captured_at=CAPTURED - timedelta(weeks=4),
                                 area=2 * phantom.truth["area_cm2"])
    started = time.monotonic()
    response = submit(client, world.wound.id, headers, phantom)
    assert response.status_code == 201, response.text
    assessment = response.json()
    _check_assessment(assessment, phantom)
    _check_scan(client, headers, settings, assessment, phantom)
    assert client.get(f"/assessments/{assessment['id']}", headers=auth(world.patient_user)).json() == assessment
    listed = client.get(f"/wounds/{world.wound.id}/assessments", headers=headers).json()
    assert [a["id"] for a in listed] == [baseline.id, assessment["id"]]
    _check_trend(client.get(f"/wounds/{world.wound.id}/trend", headers=headers).json(), baseline, assessment)
    _check_report(client, headers, assessment, phantom)
    _check_fhir(client, headers, world.patient.id, assessment)
    assert time.monotonic() - started < 60


def _check_assessment(assessment: dict, phantom: Files) -> None:
    truth = phantom.truth
    assert assessment["area_cm2"] == pytest.approx(truth["area_cm2"], rel=0.2)
    assert assessment["max_depth_mm"] == pytest.approx(truth["max_depth_mm"], rel=0.2)
    assert assessment["tissue"]["unknown"] == pytest.approx(1.0)
    assert assessment["exudate"] == "moderate" and assessment["p_heal_12w"] is None  # no prognosis model served
    assert assessment["model_versions"] == {"coherency-points": "1", "coherency-photos": "1"}
    assert assessment["data_version"] == DATA_VERSION
    result = assessment["result"]
    assert result["segmentation"]["photo_used"] is True and result["area_cm2"] == assessment["area_cm2"]
    low, high = result["uncertainty"]["area_cm2"]
    assert low <= assessment["area_cm2"] <= high
    assert 20 <= len(result["outline"]) <= 200


def _check_scan(client, headers, settings, assessment: dict, phantom: Files) -> None:
    scan = client.get(f"/scans/{assessment['scan_id']}", headers=headers).json()
    assert scan["status"] == "assessed" and scan["error"] is None and scan["assessment_id"] == assessment["id"]
    assert scan["scan_format"] == "ply" and scan["has_photo"] is True
    assert scan["scan_sha256"] == hashlib.sha256(phantom.scan).hexdigest()
    assert scan["scan_metadata"] == {"device": "phantom sensor", "exudate": "moderate"}
    assert datetime.fromisoformat(scan["captured_at"]) == CAPTURED
    storage = storage_for(settings.storage_url)
    assert storage.get(f"scans/{scan['id']}/scan.ply") == phantom.scan
    assert storage.get(f"scans/{scan['id']}/photo.png") == phantom.photo


def _check_trend(trend: dict, baseline, assessment: dict) -> None:
    summary = trend["summary"]
    expected = 100 * (baseline.area_cm2 - assessment["area_cm2"]) / baseline.area_cm2
    assert [p["assessment_id"] for p in trend["points"]] == [baseline.id, assessment["id"]]
    assert summary["baseline"]["assessment_id"] == baseline.id
    assert summary["latest"]["assessment_id"] == assessment["id"]
    assert summary["weeks_since_baseline"] == pytest.approx(4.0)
    assert summary["area_reduction_pct"] == pytest.approx(expected)
    assert summary["area_reduction_4w_pct"] == pytest.approx(expected)
    assert summary["on_track_4w"] is (expected >= 50)


def _check_report(client, headers, assessment: dict, phantom: Files) -> None:
    html = client.get(f"/assessments/{assessment['id']}/report.html", headers=headers)
    assert html.status_code == 200 and "unknown 100%" in html.text and "coherency-points v1" in html.text
    images = [part.split('"')[0] for part in html.text.split("data:image/png;base64,")[1:]]
    assert len(images) == 2 and all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    pdf = client.get(f"/assessments/{assessment['id']}/report.pdf", headers=headers)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    # the overlay: the served outline, projected through the camera, lies on the wound's edge in the photo
    pixels = project(phantom.camera_dict, np.asarray(assessment["result"]["outline"]))
    edge = phantom.mask ^ ndimage.binary_erosion(phantom.mask)
    distance = ndimage.distance_transform_edt(~edge)[pixels[:, 1].round().astype(int), pixels[:, 0].round().astype(int)]
    # pixels of the 512-pixel photo (measured 1.0 and 82%); the outline 3 pixels off (2.5, 67%) or with x and y
    # swapped (3.1, 50%) fails both
    assert np.median(distance) < 2 and np.mean(distance <= 3) > 0.75


def _check_fhir(client, headers, patient_id: str, assessment: dict) -> None:
    response = client.get("/fhir/Observation", params={"patient": patient_id}, headers=headers)
    bundle = Bundle.model_validate_json(response.content)
    mine = {e.resource.id: e.resource for e in bundle.entry if e.resource.id.startswith(assessment["id"])}
    size, tissue = mine[f"{assessment['id']}-size"], mine[f"{assessment['id']}-tissue"]
    values = {c.code.coding[0].code: float(c.valueQuantity.value) for c in size.component}
    assert size.code.coding[0].code == "72287-6"
    assert values["89260-4"] == pytest.approx(assessment["area_cm2"], abs=1e-3)
    assert values["39127-6"] == pytest.approx(assessment["max_depth_mm"] / 10, abs=1e-3)
    assert tissue.code.coding[0].code == "72371-8" and tissue.valueCodeableConcept.coding[0].code == "unknown"


def test_a_failed_assessment_keeps_the_scan_for_a_retry(client, auth, world, session, settings, served, phantom):
    settings.serving_url, settings.serving_timeout_s = f"http://127.0.0.1:{free_port()}", 120  # nothing listens
    headers = auth(world.clinician)
    failed = submit(client, world.wound.id, headers, phantom)
    assert failed.status_code == 502 and failed.json()["code"] == "upstream_error"
    assert "unreachable" in failed.json()["error"] and "/assess to try again" in failed.json()["error"]
    scan_id = failed.headers["location"].removeprefix("/scans/")
    scan = client.get(f"/scans/{scan_id}", headers=headers).json()
    assert scan["status"] == "failed" and "unreachable" in scan["error"] and scan["assessment_id"] is None
    assert storage_for(settings.storage_url).get(f"scans/{scan_id}/scan.ply") == phantom.scan
    settings.serving_url = served
    retried = client.post(f"/scans/{scan_id}/assess", headers=headers)
    assert retried.status_code == 201, retried.text
    assert retried.json()["scan_id"] == scan_id and retried.json()["area_cm2"] is not None
    scan = client.get(f"/scans/{scan_id}", headers=headers).json()
    assert scan["status"] == "assessed" and scan["error"] is None and scan["assessment_id"] == retried.json()["id"]
    assert client.post(f"/scans/{scan_id}/assess", headers=headers).status_code == 409


def test_a_scan_the_service_cannot_read_is_invalid_and_kept_as_failed(client, auth, world, session, settings,
                                                                     served):
    settings.serving_url = served
    broken = b"ply\nformat ascii 1.0\nelement vertex 5\n"  # a PLY by its first bytes, not by its header
    response = client.post(f"/wounds/{world.wound.id}/scans", files={"scan": ("s.ply", broken)},
                           headers=auth(world.clinician))
    assert response.status_code == 422 and "refused the scan" in response.json()["error"]
    assert "unreadable PLY" in response.json()["error"]
    scan = session.get(ScanRow, response.headers["location"].removeprefix("/scans/"))
    assert scan.status == "failed" and "unreadable PLY" in scan.error
