"""`coherency up`: the platform on this machine, as `make run` ends: both KServe servers, the MLflow UI, the
Evidently dashboard and the platform API, a few held-out phantoms assessed through the service (measured against
their truth), one of them submitted again through the platform API for a demo patient (coherency.platform_demo),
the URLs, and serving until Ctrl-C.

The held-out phantoms use a seed the training data never used, so the numbers printed are what the service
does on scans it has not seen. When the cohort exists, each scan is sent as a visit of one of its wounds, so
the transformer fetches that wound's online features from Feast and the reply carries a prognosis.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from coherency.cli import Profile, clean_errors
from coherency.serve_cli import Params, run_servers

HOLDOUT_SEED = 90_210  # differs from phantoms.seed and from the pipeline's gate seed (seed + 7919)
DEMO_DIR = Path(".tmp/demo-scans")


@clean_errors
def up(
    scans: Annotated[int, typer.Option(min=0, max=50, help="Held-out phantoms to assess once serving.")] = 3,
    mlflow_port: Annotated[int, typer.Option(help="Port of the MLflow UI.")] = 5000,
    dashboard_port: Annotated[int, typer.Option(help="Port of the Evidently monitoring dashboard.")] = 8000,
    api_port: Annotated[int, typer.Option(help="Port of the platform API.")] = 8090,
    profile: Profile = "demo",
    params: Params = Path("params.yaml"),
) -> None:
    """Serve the champions with dashboards, assess held-out phantoms through the service, keep serving."""
    from models import registry
    from serving.settings import serving_settings

    settings = serving_settings(profile, params)
    api_url = f"http://127.0.0.1:{api_port}"
    _prepare_api(settings)
    uri = registry.tracking_uri(settings.registry_path)
    extra = {"mlflow ui": [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1",
                           "--port", str(mlflow_port)],
             "monitoring dashboard": [sys.executable, "-m", "coherency", "monitor", "ui", "--port",
                                      str(dashboard_port), "--profile", profile],
             "platform api": [sys.executable, "-m", "coherency", "api", "--port", str(api_port)]}

    def when_ready() -> None:
        if scans:
            paths = assess_holdout(settings, scans, profile, params)
            _platform_demo(api_url, paths[0].with_suffix(""), _cohort_wounds(1)[0])
        typer.echo(f"MLflow UI: http://127.0.0.1:{mlflow_port}   monitoring dashboard: "
                   f"http://127.0.0.1:{dashboard_port}   ('coherency monitor' adds a drift snapshot)   "
                   f"platform API: {api_url}/docs")

    run_servers(settings, profile, params, extra=extra, when_ready=when_ready,
                extra_ports=(mlflow_port, dashboard_port, api_port))


def _prepare_api(settings) -> None:
    """Point the platform API at the transformer, migrate its database and make the demo accounts."""
    import os

    from coherency.api_cli import api_settings
    from coherency.platform_demo import ensure_accounts

    os.environ.setdefault("COHERENCY_API_SERVING_URL", settings.url(settings.transformer_port))
    ensure_accounts(api_settings().database_url)


def _platform_demo(api_url: str, scan_stem: Path, feature_key: str | None) -> None:
    """The demo through the platform API; a failure is reported, and serving goes on."""
    import httpx

    from coherency.platform_demo import run_demo

    _wait_for(f"{api_url}/health")
    try:
        run_demo(api_url, scan_stem, feature_key)
    except (RuntimeError, httpx.HTTPError) as e:
        typer.echo(f"platform demo failed: {e}")


def _wait_for(url: str, timeout_s: float = 60.0) -> None:
    import time

    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.3)


def assess_holdout(settings, n: int, profile: str, params: Path) -> list[Path]:
    """Write `n` held-out phantoms, send each through the service, print measured against true values."""
    from features.io import read_camera, read_metadata
    from features.params import load_params
    from features.phantoms import PhantomConfig, write_phantoms
    from serving.client import ServiceError, assess_remote

    config = PhantomConfig.from_params(load_params("phantoms", profile, params))
    paths = write_phantoms(n, DEMO_DIR, HOLDOUT_SEED, config)
    wounds = _cohort_wounds(n)
    typer.echo(f"assessing {n} held-out phantoms (seed {HOLDOUT_SEED}) through "
               f"{settings.url(settings.transformer_port)}: measured / true (error)")
    typer.echo(f"{'scan':<18}{'area cm2':>18}{'volume cm3':>18}{'max depth mm':>18}  prognosis")
    for path, wound in zip(paths, wounds, strict=True):
        stem = path.with_suffix("")
        meta = {**read_metadata(f"{stem}.meta.json"), **({"wound_id": wound} if wound else {})}
        files = {"scan": path.read_bytes(), "photo": Path(f"{stem}.png").read_bytes(),
                 "camera": read_camera(f"{stem}.camera.json").to_dict(), "metadata": meta}
        try:
            result = assess_remote(settings.url(settings.transformer_port), settings.model_name, **files)
        except ServiceError as e:
            typer.echo(f"{path.name:<18}refused: {e}")
            continue
        typer.echo(_row(path.stem, result, json.loads(Path(f"{stem}.truth.json").read_text())))
    return paths


def _row(name: str, result: dict, truth: dict) -> str:
    cells = []
    for key in ("area_cm2", "volume_cm3", "max_depth_mm"):
        got, true = result.get(key), truth.get(key)
        cells.append("not measured" if got is None else
                     f"{got:.2f} / {true:.2f} ({100 * (got - true) / true:+.0f}%)" if true else f"{got:.2f}")
    prognosis = result.get("prognosis") or {}
    healing = next((v for k, v in prognosis.items() if k.startswith("p_")), None)
    flags = ",".join(f["code"] for f in result.get("flags", []))
    return (f"{name:<18}" + "".join(f"{c:>18}" for c in cells)
            + f"  {'-' if healing is None else f'P(heal 12 w) {healing:.2f}'} {flags}")


def _cohort_wounds(n: int) -> list[str | None]:
    """The first `n` wound ids of the synthetic cohort (None each when there is no cohort)."""
    table = Path("data/cohort/wounds.parquet")
    if not table.is_file():
        return [None] * n
    import pandas as pd

    ids = pd.read_parquet(table, columns=["wound_id"])["wound_id"].head(n).tolist()
    return ids + [None] * (n - len(ids))
