"""`coherency up` (the end of `make run`) for real: servers, MLflow UI and monitoring dashboard in subprocesses,
one held-out phantom assessed through the service, the URLs printed, and everything gone after SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import httpx
import psutil
import pytest
import yaml

from tests.serving.conftest import register_champion, tiny_ensemble
from tests.serving.test_servers import child_env, free_port

pytestmark = pytest.mark.timeout(300)


def wait_for_text(log, text: str, process: subprocess.Popen, seconds: float = 240) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        content = log.read_text()
        if text in content:
            return content
        assert process.poll() is None, f"exited with {process.returncode}:\n{content[-3000:]}"
        time.sleep(0.3)
    raise AssertionError(f"{text!r} not printed within {seconds} s:\n{log.read_text()[-3000:]}")


def test_up_serves_assesses_held_out_phantoms_and_stops_cleanly(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    ensemble = tiny_ensemble()
    register_champion(tmp_path / "mlruns", "pointnet", ensemble.points, "md5-up")
    register_champion(tmp_path / "mlruns", "unet", ensemble.unet, "md5-up")
    ports = {name: free_port() for name in ("transformer_port", "predictor_port", "mlflow", "dashboard", "api")}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({
        "serving": {"transformer_port": ports["transformer_port"], "predictor_port": ports["predictor_port"],
                    "registry": "mlruns", "max_points": 400_000},
        "monitoring": {"log": "monitoring/inference.sqlite", "reports": "monitoring/reports",
                       "workspace": "monitoring/workspace"},
        "phantoms": {"texture": "procedural", "photos_dir": None}}))
    log = tmp_path / "up.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "coherency", "up", "--scans", "1", "--mlflow-port", str(ports["mlflow"]),
             "--dashboard-port", str(ports["dashboard"]), "--api-port", str(ports["api"])], cwd=tmp_path,
            env=child_env(), stdout=out, stderr=subprocess.STDOUT)
    try:
        printed = wait_for_text(log, "serving coherency", process)
        assert "assessing 1 held-out phantoms" in printed
        row = next(line for line in printed.splitlines() if line.startswith("phantom_"))
        assert "refused" not in row  # the service answered: measured, or flagged as not measurable
        assert "platform demo failed" not in printed  # the same scan through the platform API for a demo patient
        assert f"platform API http://127.0.0.1:{ports['api']}" in printed and "follow-up every" in printed
        assert f"http://127.0.0.1:{ports['mlflow']}" in printed and f"http://127.0.0.1:{ports['dashboard']}" in printed
        assert httpx.get(f"http://127.0.0.1:{ports['transformer_port']}/v2/health/ready", timeout=5).status_code == 200
        for port in (ports["mlflow"], ports["dashboard"]):  # the dashboards may still be starting
            deadline = time.monotonic() + 120
            while True:
                try:
                    assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, f"nothing answers on port {port}:\n{log.read_text()[-2000:]}"
                    time.sleep(0.5)
        children = psutil.Process(process.pid).children(recursive=True)
        assert len(children) >= 4
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(90) == 0, log.read_text()[-3000:]
    _, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, f"left running: {[p.pid for p in alive]}"
