"""Serving speed: latency percentiles and scans/s over HTTP (transformer -> predictor) against the same ensemble
called in-process, for 100k- and 500k-point scans at concurrency 1, 4 and 16.

The ensemble is the registry's champion (`--registry`, default mlruns after `make run`), or, when there is
none, an untrained network of the demo's size registered in a temporary store: same compute, no training.
Each configuration sends a bounded number of requests (--requests, at least the concurrency), so the run stops
by itself. On a CUDA machine the predictor batches concurrent requests; the table then shows that throughput.
Prints a table; writes results/bench_serving.json. Run with `make bench` (never part of `make test`).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import yaml

from features.io import Scan, write_ply
from features.params import load_params
from features.phantoms import PhantomConfig, make_phantom, write_phantoms

SIZES = (100_000, 500_000)
CONCURRENCY = (1, 4, 16)


def scan_of_size(n_points: int, seed: int = 7) -> Scan:
    """A limb phantom resampled to n_points: a subsample, or copies jittered by 0.2 mm (a denser sensor)."""
    scan = make_phantom(1, PhantomConfig(texture="procedural", photos_dir=None), seed=seed).scan
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(scan), n_points, replace=n_points > len(scan))
    out = scan.subset(pick)
    repeated = np.zeros(n_points, bool)
    repeated[np.unique(pick, return_index=True)[1]] = True
    out.points = out.points + np.where(repeated[:, None], 0.0, rng.normal(0, 2e-4, out.points.shape))
    out.label = out.tissue = None  # the service segments; it is never told the answer
    return out


def percentiles(latencies: list[float], wall: float) -> dict:
    ms = np.asarray(latencies) * 1e3
    return {"requests": len(ms), "p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
            "p99_ms": float(np.percentile(ms, 99)), "scans_per_s": len(ms) / wall}


def load(call, concurrency: int, requests: int) -> dict:
    """`requests` calls of `call()` from `concurrency` threads; latency per call and throughput over the wall."""
    def timed(_):
        start = time.perf_counter()
        call()
        return time.perf_counter() - start

    call()  # warm-up: first-call costs (allocations, lazy imports) are not the steady state
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = list(pool.map(timed, range(max(requests, concurrency))))
    return percentiles(latencies, time.perf_counter() - start)


def champion_store(registry: Path, workdir: Path) -> Path:
    """`registry` when it has a point-network champion, else a temporary store with an untrained demo network."""
    from models import registry as mlflow_registry
    from models.lit.points import PointTrainParams
    from pipelines.segmentation import POINTS

    if (registry / "mlflow.db").is_file():
        mlflow_registry.use_store(registry)
        if mlflow_registry.alias_version(POINTS, mlflow_registry.CHAMPION):
            return registry
    import mlflow
    import torch

    from pipelines.segmentation import REQUIREMENTS, model_metadata

    store, params = workdir / "mlruns", PointTrainParams()
    mlflow_registry.use_store(store)
    torch.manual_seed(0)
    with mlflow.start_run(experiment_id=mlflow_registry.experiment_id("pointnet", store)):
        info = mlflow.pytorch.log_model(params.model(), name="pointnet", serialization_format="pickle",
                                        pip_requirements=REQUIREMENTS, metadata=model_metadata("pointnet", params))
    version = mlflow_registry.register(info.model_uri, POINTS, {"wound_iou": 0.0}, {"data_version": "bench"})
    mlflow_registry.gate(POINTS, version, "wound_iou", 0.0, None)
    return store


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_service(store: Path, workdir: Path) -> tuple[subprocess.Popen, str]:
    """`coherency serve` on free ports with the benchmark's registry; returns the process and the transformer URL."""
    import httpx

    params = yaml.safe_load(Path("params.yaml").read_text())
    params["serving"].update(registry=str(store), transformer_port=free_port(), predictor_port=free_port())
    params["monitoring"]["log"] = str(workdir / "inference.sqlite")
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "DO_NOT_TRACK": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    log = (workdir / "serve.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "coherency", "serve", "--params", str(workdir / "params.yaml")],
                               stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{params['serving']['transformer_port']}"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"coherency serve exited {process.returncode}; see {workdir / 'serve.log'}")
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    process.terminate()
    raise SystemExit("coherency serve was not ready within 10 minutes")


def run(args: argparse.Namespace, workdir: Path) -> list[dict]:
    from serving.assessment import assess
    from serving.client import assess_remote
    from serving.ensemble import Ensemble

    store = champion_store(args.registry, workdir)
    ensemble = Ensemble.from_registry(store).to()
    service, url = start_service(store, workdir)
    rows = []
    try:
        if args.accuracy:
            print(f"accuracy on {args.accuracy} held-out phantoms through coherency assess (no labels sent):")
            rows.append({"accuracy": accuracy(url, args.accuracy, workdir)})
            print(json.dumps(rows[-1]["accuracy"]["median_abs_error"]))
        print(f"{'points':>8} {'conc':>4} | {'in-process: p50 ms':>18} {'p95':>8} {'p99':>8} {'scans/s':>7} | "
              f"{'HTTP: p50 ms':>12} {'p95':>8} {'p99':>8} {'scans/s':>7} | HTTP/in-process")
        for size in args.sizes:
            scan = scan_of_size(size)
            write_ply(workdir / "scan.ply", scan)
            body = (workdir / "scan.ply").read_bytes()
            for concurrency in args.concurrency:
                requests = max(args.requests, concurrency)
                here = load(lambda s=scan: assess(ensemble, s), concurrency, requests)
                http = load(lambda b=body: assess_remote(url, "coherency", b), concurrency, requests)
                rows.append({"points": size, "concurrency": concurrency, "in_process": here, "http": http,
                             "http_share": http["scans_per_s"] / here["scans_per_s"]})
                print_row(rows[-1])
    finally:
        service.terminate()
        service.wait(60)
    return rows


def accuracy(url: str, n: int, workdir: Path, seed: int = 4242) -> dict:
    """`coherency assess --json` on n phantoms of a seed no model trained on, labels stripped; errors vs truth."""
    from features.io import read_scan

    config = PhantomConfig.from_params(load_params("phantoms", "demo"))
    rows = []
    for path in write_phantoms(n, workdir / "held-out", seed, config):
        stem = path.with_suffix("")
        blind = read_scan(path)
        blind.label = blind.tissue = None  # the service must find the wound itself
        write_ply(workdir / "blind.ply", blind)
        cli = [sys.executable, "-m", "coherency", "assess", str(workdir / "blind.ply"), "--photo", f"{stem}.png",
               "--camera", f"{stem}.camera.json", "--url", url, "--json"]
        done = subprocess.run(cli, capture_output=True, text=True, timeout=900)
        result = json.loads(done.stdout.splitlines()[-1]) if done.returncode == 0 else {}
        truth = json.loads(Path(f"{stem}.truth.json").read_text())
        rows.append({"scan": path.stem, **{f"{k}_error": relative_error(result.get(k), truth[k])
                                           for k in ("area_cm2", "volume_cm3", "max_depth_mm")}})
        print(f"{path.stem:<16} " + " ".join(f"{k} {fmt(rows[-1][f'{k}_error'])}"
                                            for k in ("area_cm2", "volume_cm3", "max_depth_mm")), flush=True)
    medians = {k: float(np.median([abs(r[k]) if r[k] is not None else np.inf for r in rows]))
               for k in rows[0] if k.endswith("_error")}
    return {"seed": seed, "scans": rows, "median_abs_error": medians,
            "area_within_5pct": medians["area_cm2_error"] <= 0.05,
            "volume_within_10pct": medians["volume_cm3_error"] <= 0.10}


def relative_error(got: float | None, true: float) -> float | None:
    return None if got is None else (got - true) / true


def fmt(error: float | None) -> str:
    return "not measured" if error is None else f"{100 * error:+6.1f}%"


def print_row(row: dict) -> None:
    here, http = row["in_process"], row["http"]
    print(f"{row['points']:>8} {row['concurrency']:>4} | {here['p50_ms']:>8.0f} {here['p95_ms']:>8.0f} "
          f"{here['p99_ms']:>8.0f} {here['scans_per_s']:>7.2f} | {http['p50_ms']:>8.0f} {http['p95_ms']:>8.0f} "
          f"{http['p99_ms']:>8.0f} {http['scans_per_s']:>7.2f} | {100 * row['http_share']:>5.0f}%", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", type=Path, default=Path("mlruns"))
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--concurrency", type=int, nargs="+", default=list(CONCURRENCY))
    parser.add_argument("--requests", type=int, default=16, help="requests per configuration (>= concurrency)")
    parser.add_argument("--accuracy", type=int, default=8, help="held-out phantoms assessed for accuracy (0: none)")
    parser.add_argument("--out", type=Path, default=Path("results/bench_serving.json"))
    args = parser.parse_args()
    import torch

    device = "cuda" if torch.cuda.is_available() else f"cpu ({os.cpu_count()} cores)"
    print(f"device: {device}")
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as workdir:
        rows = run(args, Path(workdir))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"device": device, "rows": rows}, indent=2))
    worst = min(row["http_share"] for row in rows if "http_share" in row)
    print(f"HTTP keeps {100 * worst:.0f}% of the in-process throughput at worst (target 80%); wrote {args.out}")


if __name__ == "__main__":
    main()
