"""`coherency serve` for real: both KServe servers in subprocesses on free ports, the champions loaded from an MLflow
registry in a temporary folder, then metadata, readiness, inferences (tritonclient V2 binary, plain V1 JSON,
`coherency assess`), every kind of bad input, /metrics, and a clean stop on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest
import tritonclient.http as triton
import yaml
from typer.testing import CliRunner

from coherency.cli import app
from serving.assessment import MEASUREMENTS
from serving.client import request_body
from tests.serving.conftest import register_champion, tiny_ensemble
from tests.serving.payloads import camera_dict, photo_bytes, scan_bytes, v1_body

NAME = "coherency"
MAX_BODY_MB = 1
pytestmark = pytest.mark.timeout(300)  # a server that never answers fails the test instead of stalling the suite


def child_env() -> dict[str, str]:
    """This environment for a server, without the registry URI an earlier test left behind."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return {**env, "DO_NOT_TRACK": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}


@dataclass
class Service:
    process: subprocess.Popen
    transformer: str  # base URLs
    predictor: str
    params: Path
    registry: Path
    folder: Path

    @property
    def infer_v2(self) -> str:
        return f"{self.transformer}/v2/models/{NAME}/infer"

    @property
    def predict_v1(self) -> str:
        return f"{self.transformer}/v1/models/{NAME}:predict"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_ready(url: str, process: subprocess.Popen, log: Path, seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, f"exited with {process.returncode}:\n{log.read_text()[-3000:]}"
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} not ready within {seconds} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def service(tmp_path_factory) -> Service:
    with pytest.MonkeyPatch.context() as env:  # mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI: undo it after
        env.delenv("MLFLOW_TRACKING_URI", raising=False)
        yield from _serve(tmp_path_factory.mktemp("serve"))


def _serve(folder: Path):
    registry = folder / "mlruns"
    ensemble = tiny_ensemble()
    register_champion(registry, "pointnet", ensemble.points, "md5-served")
    register_champion(registry, "unet", ensemble.unet, "md5-served")
    ports = {"transformer_port": free_port(), "predictor_port": free_port()}
    params = folder / "params.yaml"
    params.write_text(yaml.safe_dump({
        "serving": {"model_name": NAME, "host": "127.0.0.1", **ports, "registry": str(registry),
                    "max_body_mb": MAX_BODY_MB, "max_points": 100_000},
        "monitoring": {"log": str(folder / "inference.sqlite"), "reports": str(folder / "reports")}}))
    log = folder / "serve.log"
    with log.open("w") as out:  # a file, not a pipe nobody drains: the servers log every request
        process = subprocess.Popen([sys.executable, "-m", "coherency", "serve", "--params", str(params)], cwd=folder,
                                   env=child_env(), stdout=out, stderr=subprocess.STDOUT)
    transformer, predictor = (f"http://127.0.0.1:{ports[k]}" for k in ("transformer_port", "predictor_port"))
    try:
        wait_until_ready(transformer, process, log)
        deadline = time.monotonic() + 30
        while "serving coherency" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)  # `serve` prints the URLs once it has seen the transformer ready too
        yield Service(process, transformer, predictor, params, registry, folder)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(60)


@pytest.fixture(scope="module")
def scan_file(service) -> Path:
    path = service.folder / "scan.ply"
    path.write_bytes(scan_bytes(service.folder))
    return path


def test_server_and_model_metadata_and_readiness(service):
    for url, inputs in ((service.transformer, {"scan", "scan_format", "photo", "camera", "metadata"}),
                        (service.predictor, {"points", "colors", "photo", "camera", "metadata", "history"})):
        client = triton.InferenceServerClient(url.removeprefix("http://"))
        assert client.get_server_metadata()["name"] == "kserve"
        assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(NAME)
        metadata = client.get_model_metadata(NAME)
        assert {i["name"] for i in metadata["inputs"]} == inputs
        assert metadata["outputs"] == [{"name": "assessment", "datatype": "BYTES", "shape": [1]}]
    assert "serving coherency" in (service.folder / "serve.log").read_text()  # the URLs were printed


def _triton_inputs(scan: bytes, photo: bytes, camera: dict, metadata: dict) -> list[triton.InferInput]:
    inputs = []
    for name, value in (("scan", scan), ("photo", photo), ("camera", json.dumps(camera).encode()),
                        ("metadata", json.dumps(metadata).encode())):
        tensor = triton.InferInput(name, [1], "BYTES")
        tensor.set_data_from_numpy(np.array([value], dtype=object), binary_data=True)
        inputs.append(tensor)
    return inputs


@pytest.fixture(scope="module")
def served_v2(service, scan_file) -> dict:
    """One assessment through tritonclient (binary BYTES in and out): scan, photo, camera and metadata."""
    client = triton.InferenceServerClient(service.transformer.removeprefix("http://"), network_timeout=120)
    inputs = _triton_inputs(scan_file.read_bytes(), photo_bytes(), camera_dict(), {"body_site": "heel"})
    return json.loads(client.infer(NAME, inputs).as_numpy("assessment")[0])


def test_tritonclient_binary_inference_returns_the_assessment(served_v2):
    assert set(MEASUREMENTS) <= set(served_v2)
    assert {"segmentation", "tissue", "prognosis", "confidence", "flags"} <= set(served_v2)
    assert served_v2["segmentation"]["points"] > 1000 and served_v2["segmentation"]["photo_used"] is True
    assert served_v2["models"] == {"coherency-points": "1", "coherency-photos": "1"}
    assert served_v2["data_version"] == "md5-served"
    assert {"parse", "features", "predictor", "decode", "points", "photo", "fusion"} <= set(served_v2["timings_ms"])


def test_v1_json_gives_the_same_assessment(service, scan_file, served_v2):
    body = v1_body(scan_file.read_bytes(), photo_bytes(), camera_dict(), {"body_site": "heel"})
    response = httpx.post(service.predict_v1, json=body, timeout=120)
    assert response.status_code == 200, response.text
    result = response.json()["predictions"][0]
    assert _without_timings(result) == _without_timings(served_v2)


def _without_timings(result: dict) -> dict:
    return {k: v for k, v in result.items() if k != "timings_ms" and k != "quality"}


def test_coherency_assess_json_served_and_in_process_agree(service, scan_file):
    runner = CliRunner()
    served = runner.invoke(app, ["assess", str(scan_file), "--json", "--url", service.transformer])
    assert served.exit_code == 0, served.output
    here = runner.invoke(app, ["assess", str(scan_file), "--json", "--in-process", "--params", str(service.params)])
    assert here.exit_code == 0, here.output
    one, two = (json.loads(r.stdout.strip().splitlines()[-1]) for r in (served, here))
    assert set(MEASUREMENTS) | {"segmentation", "tissue", "prognosis"} <= set(one)
    assert _without_timings(one) == _without_timings(two)
    table = runner.invoke(app, ["assess", str(scan_file), "--url", service.transformer])
    assert table.exit_code == 0 and "segmentation:" in table.stdout and "coherency-points v1" in table.stdout


def _v2_binary(scan: bytes, **kwargs) -> dict:
    body, headers = request_body(NAME, scan, **kwargs)
    return {"content": body, "headers": headers}


BAD_REQUESTS = {
    "malformed scan (V2)": ("v2", lambda s: _v2_binary(b"ply\nformat ascii 1.0\nelement vertex 5\n"), 400,
                            "unreadable PLY"),
    "malformed scan (V1)": ("v1", lambda s: {"json": v1_body(b"VERSION 0.7\nPOINTS 3\n")}, 400, "PCD header lacks"),
    "photo without camera": ("v1", lambda s: {"json": v1_body(s, photo_bytes())}, 400, "photo needs its camera"),
    "photo of another size": ("v2", lambda s: _v2_binary(s, photo=photo_bytes(20, 10), camera=camera_dict()), 400,
                              "camera describes 40x30"),
    "bad camera": ("v1", lambda s: {"json": v1_body(s, photo_bytes(), {"width": 40})}, 400,
                   "camera JSON lacks height"),
    "header length not a number": ("v2", lambda s: {**_v2_binary(s), "headers": {
        **_v2_binary(s)["headers"], "inference-header-content-length": "x"}}, 400, "must be an integer"),
    "wrong content type (V1)": ("v1", lambda s: {"content": s, "headers": {"content-type": "text/plain"}}, 415,
                                "Content-Type: application/json"),
    "wrong content type (V2)": ("v2", lambda s: {"content": s, "headers": {"content-type": "image/png"}}, 415,
                                "neither JSON nor"),
    "invalid JSON": ("v1", lambda s: {"content": b"{nope", "headers": {"content-type": "application/json"}}, 400,
                     "Unrecognized request format"),
    "V2 JSON of the wrong shape": ("v2", lambda s: {"json": {"inputs": 3}}, 400, "invalid request body"),
    "oversized body": ("v2", lambda s: _v2_binary(b"ply\n" + b"\0" * (MAX_BODY_MB * 2**20)), 413,
                       f"larger than the {MAX_BODY_MB} MB limit"),
    "unknown model (V2)": ("/v2/models/nope/infer", lambda s: _v2_binary(s), 404, "nope does not exist"),
    "unknown model (V1)": ("/v1/models/nope:predict", lambda s: {"json": v1_body(s)}, 404, "nope does not exist"),
    "unknown route": ("/v3/anything", lambda s: {"json": {}}, 404, "Not Found"),
}


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=list(BAD_REQUESTS))
def test_bad_input_is_a_4xx_with_one_json_error_shape(service, scan_file, case):
    where, make, status, message = BAD_REQUESTS[case]
    url = {"v1": service.predict_v1, "v2": service.infer_v2}.get(where, f"{service.transformer}{where}")
    response = httpx.post(url, timeout=60, **make(scan_file.read_bytes()))
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()
    assert list(error) == ["error"] and message in error["error"]
    assert httpx.get(f"{service.transformer}/v2/health/live", timeout=5).json() == {"live": True}


def test_metrics_have_the_stage_histograms_and_the_log_has_the_inferences(service, served_v2):
    predictor, transformer = (httpx.get(f"{url}/metrics", timeout=10).text
                              for url in (service.predictor, service.transformer))
    for stage in ("decode", "points", "fusion", "log"):
        assert f'coherency_stage_seconds_count{{server="predictor",stage="{stage}"}}' in predictor
    for stage in ("parse", "features", "predictor"):
        assert f'coherency_stage_seconds_count{{server="transformer",stage="{stage}"}}' in transformer
    monitoring = pytest.importorskip("serving.monitoring")
    if hasattr(monitoring, "DriftCollector"):
        assert "coherency_drift_summary_available 0.0" in predictor
    assert len(monitoring.read_log(service.folder / "inference.sqlite")) >= 1


def test_assess_and_serve_fail_with_one_line(service, scan_file, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI")  # it would override --registry (see models.registry.tracking_uri)
    runner = CliRunner()
    refused = runner.invoke(app, ["assess", str(service.params), "--url", service.transformer])
    unreachable = runner.invoke(app, ["assess", str(scan_file), "--url", f"http://127.0.0.1:{free_port()}"])
    free = ["--transformer-port", str(free_port()), "--predictor-port", str(free_port())]
    no_registry = runner.invoke(app, ["serve", "--params", str(service.params), "--registry", str(tmp_path), *free])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = runner.invoke(app, ["serve", "--params", str(service.params), "--transformer-port", str(port),
                                   "--predictor-port", str(free_port())])
    for result, message in ((refused, "400: "), (unreachable, "start the service with 'coherency serve'"),
                            (no_registry, "no MLflow registry"), (busy, f"port {port} is in use")):
        assert result.exit_code == 2, result.output
        assert len(result.output.strip().splitlines()) == 1 and message in result.output


def test_the_transformer_is_live_but_not_ready_without_its_predictor(tmp_path):
    port, absent = free_port(), free_port()
    log = tmp_path / "transformer.log"
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "serving.transformer", "--model_name", NAME, "--http_port",
                                    str(port), "--enable_grpc", "false", "--predictor_protocol", "v2",
                                    "--predictor_host", f"127.0.0.1:{absent}", "--enable_predictor_health_check"],
                                   env=child_env(), stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _answers(f"{url}/v2/health/live") and time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()[-2000:]
            time.sleep(0.3)
        assert httpx.get(f"{url}/v2/health/live").json() == {"live": True}
        for path in ("/v2/health/ready", f"/v2/models/{NAME}/ready"):
            response = httpx.get(f"{url}{path}")
            assert response.status_code == 503 and "not ready" in response.json()["error"]
        response = httpx.post(f"{url}/v2/models/{NAME}/infer", **_v2_binary(scan_bytes(tmp_path)), timeout=30)
        assert response.status_code == 503 and "does not answer" in response.json()["error"]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_sigterm_stops_both_servers(service):  # last: it ends the module's service
    children = psutil.Process(service.process.pid).children()
    assert sorted(" ".join(c.cmdline()).split(" -m ")[1].split()[0] for c in children) == [
        "serving.predictor", "serving.transformer"]
    service.process.send_signal(signal.SIGTERM)
    assert service.process.wait(60) == 0
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
