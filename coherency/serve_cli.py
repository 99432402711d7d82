"""`coherency serve` (the KServe predictor and transformer on this machine) and `coherency assess` (one scan).

coherency.cli imports this module after defining `fail` and `clean_errors`, which the commands use; import
coherency.cli, not this module, first.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from coherency.cli import Profile, clean_errors, fail

serve_app = typer.Typer(help="Serve the champion ensemble: KServe transformer -> predictor on this machine.",
                        invoke_without_command=True)
Params = Annotated[Path, typer.Option(help="The params.yaml to read the serving section from.")]
STARTUP_S = 600  # loading the champions from the registry; a CPU machine needs tens of seconds
GRACE_S = 20  # SIGTERM -> exit: uvicorn lets requests in flight finish first


@serve_app.callback()
@clean_errors
def serve(
    ctx: typer.Context,
    registry: Annotated[Path | None, typer.Option(help="MLflow store with the champions (default: "
                                                       "serving.registry).")] = None,
    transformer_port: Annotated[int | None, typer.Option(help="Port clients call (default: serving).")] = None,
    predictor_port: Annotated[int | None, typer.Option(help="The predictor's port (default: serving).")] = None,
    feature_data: Annotated[Path | None, typer.Option(help="Feast data folder for prognosis features "
                                                           "(default: data/features when it has a registry).")]
    = None,
    profile: Profile = "demo",
    params: Params = Path("params.yaml"),
) -> None:
    """Start the predictor and the transformer, wait until both are ready, print the URLs; Ctrl-C stops both."""
    if ctx.invoked_subcommand is not None:
        return
    from serving.settings import serving_settings

    settings = serving_settings(profile, params).override(registry=None if registry is None else str(registry),
                                                          transformer_port=transformer_port,
                                                          predictor_port=predictor_port)
    run_servers(settings, profile, params, feature_data)


def run_servers(settings, profile: str, params: Path, feature_data: Path | None = None,
                extra: dict[str, list[str]] | None = None, when_ready: Callable[[], None] | None = None,
                extra_ports: tuple[int, ...] = ()) -> None:
    """Check ports and champion, then run both servers (and `extra` processes) until interrupted."""
    for port in (settings.predictor_port, settings.transformer_port, *extra_ports):
        _check_port_free(port)
    _check_champion(settings)
    feature_data = feature_data or (Path("data/features") if Path("data/features/registry.db").is_file() else None)
    common = ["--model_name", settings.model_name, "--enable_grpc", "false", "--profile", profile,
              "--params", str(params)]
    predictor_args = [*common, "--http_port", str(settings.predictor_port), "--registry", settings.registry]
    transformer_args = [*common, "--http_port", str(settings.transformer_port), "--predictor_protocol", "v2",
                        "--predictor_host", f"{settings.host}:{settings.predictor_port}",
                        "--enable_predictor_health_check", *(["--feature_data", str(feature_data)] if feature_data
                                                              else [])]
    _supervise(settings, predictor_args, transformer_args, extra, when_ready)


def _check_port_free(port: int) -> None:
    """Fail with one line when `port` is taken (kserve binds 0.0.0.0, so that is what is tried)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is not in use
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            fail(f"port {port} is in use; stop what holds it or choose other ports (see --help)")


def _check_champion(settings) -> None:
    """Fail with one line when the registry has no point-network champion, before starting anything."""
    from pipelines.segmentation import POINTS

    if not os.environ.get("MLFLOW_TRACKING_URI") and not (settings.registry_path / "mlflow.db").is_file():
        fail(f"no MLflow registry at {settings.registry}; run 'coherency pipeline run' to train and register "
             "the models")
    from models import registry

    registry.use_store(settings.registry_path)
    if registry.alias_version(POINTS, settings.alias) is None:
        fail(f"no {POINTS}@{settings.alias} in {registry.tracking_uri(settings.registry_path)}; run "
             "'coherency pipeline run' to train and register the models")


def _supervise(settings, predictor_args: list[str], transformer_args: list[str],
               extra: dict[str, list[str]] | None = None, when_ready: Callable[[], None] | None = None) -> None:
    """Predictor first (the transformer reports ready only once it is), then serve until a signal or a crash.

    extra: more processes to run beside the servers (name -> argv; `coherency up`'s dashboards); when_ready:
    called once both servers are ready, before the URLs are printed.
    """
    processes: dict[str, subprocess.Popen] = {}
    # Ctrl-C reaches the servers too (one process group); SIGINT is handled even where the shell ignores it
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for name, argv in (extra or {}).items():
            processes[name] = _spawn_argv(argv)
        processes["predictor"] = _spawn("serving.predictor", predictor_args)
        _wait_ready(processes, "predictor", settings.url(settings.predictor_port))
        processes["transformer"] = _spawn("serving.transformer", transformer_args)
        _wait_ready(processes, "transformer", settings.url(settings.transformer_port))
        if when_ready is not None:
            when_ready()
        _print_urls(settings)
        while True:
            _check_alive(processes)
            time.sleep(0.5)
    except KeyboardInterrupt:
        typer.echo("stopping the servers")
    finally:
        _stop(processes)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM and SIGINT end `serve` alike


def _spawn(module: str, args: list[str]) -> subprocess.Popen:
    return _spawn_argv([sys.executable, "-m", module, *args])


def _spawn_argv(argv: list[str]) -> subprocess.Popen:
    env = {**os.environ, "DO_NOT_TRACK": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
    return subprocess.Popen(argv, env=env, preexec_fn=_die_with_parent)


def _die_with_parent() -> None:
    """Linux: the server gets SIGTERM if `coherency serve` is killed outright, so no server outlives it."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG


def _wait_ready(processes: dict[str, subprocess.Popen], name: str, url: str) -> None:
    import httpx

    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        _check_alive(processes)
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass  # not listening yet
        time.sleep(0.3)
    fail(f"the {name} was not ready within {STARTUP_S} s")


def _check_alive(processes: dict[str, subprocess.Popen]) -> None:
    for name, process in processes.items():
        if process.poll() is not None:
            if process.returncode == 2:  # it said why, on one line (e.g. no champion)
                raise typer.Exit(2)
            fail(f"the {name} stopped with exit status {process.returncode}; see its log above")


def _stop(processes: dict[str, subprocess.Popen]) -> None:
    """SIGTERM to every server still running, then wait; SIGKILL one that outlasts the grace period."""
    for process in processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes.values():
        try:
            process.wait(GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _print_urls(settings) -> None:
    base, predictor, name = settings.url(settings.transformer_port), settings.url(settings.predictor_port), \
        settings.model_name
    rows = [("V2 infer", f"{base}/v2/models/{name}/infer"), ("V1 predict", f"{base}/v1/models/{name}:predict"),
            ("ready", f"{base}/v2/health/ready"), ("metrics", f"{base}/metrics  {predictor}/metrics"),
            ("predictor", f"{predictor}/v2/models/{name}")]
    typer.echo("\n".join([f"serving {name} (Ctrl-C stops both servers):", *(f"  {k:<11}{v}" for k, v in rows)]))


@serve_app.command("manifests")
@clean_errors
def manifests(
    out: Annotated[Path, typer.Option(help="Where to write the InferenceService YAML.")]
    = Path("serving/manifests/inferenceservice.yaml"),
    image: Annotated[str, typer.Option(help="The project's image (see Dockerfile) both servers run.")]
    = "ghcr.io/coherency/coherency:latest",
    namespace: Annotated[str, typer.Option(help="Kubernetes namespace.")] = "coherency",
    gpu: Annotated[bool, typer.Option(help="Ask for one nvidia.com/gpu for the predictor.")] = True,
    registry: Annotated[Path | None, typer.Option(help="MLflow store with the champions (default: serving).")]
    = None,
    profile: Profile = "demo",
    params: Params = Path("params.yaml"),
) -> None:
    """Write the KServe InferenceService (transformer + predictor) serving the registered champions."""
    from serving.manifests import (
        ServiceSpec,
        from_dict,
        inference_service,
        registered_champions,
        to_dict,
        write_manifest,
    )
    from serving.settings import serving_settings

    settings = serving_settings(profile, params).override(registry=None if registry is None else str(registry))
    _check_champion(settings)
    champions = registered_champions(settings.registry_path, settings.alias)
    service = inference_service(ServiceSpec(settings.model_name, image, namespace, gpu), champions)
    from_dict(to_dict(service))  # what kubectl would get must parse back through the SDK's models
    typer.echo(f"wrote {write_manifest(out, service)}: " + ", ".join(f"{c.name} v{c.version}" for c in champions))


@clean_errors
def assess(
    scan: Annotated[Path, typer.Argument(help="Scan to assess (.ply or .pcd, metres).")],
    photo: Annotated[Path | None, typer.Option(help="Photo of the wound (JPEG or PNG); needs --camera.")] = None,
    camera: Annotated[Path | None, typer.Option(help="The photo's camera JSON.")] = None,
    meta: Annotated[Path | None, typer.Option(help="Metadata JSON (wound_id, body_site, device, ...).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on the last line.")] = False,
    in_process: Annotated[bool, typer.Option(help="Load the champions here instead of calling the service.")]
    = False,
    url: Annotated[str | None, typer.Option(help="The transformer's URL (default: serving.host and "
                                                 "transformer_port).")] = None,
    registry: Annotated[Path | None, typer.Option(help="MLflow store for --in-process (default: serving).")] = None,
    profile: Profile = "demo",
    params: Params = Path("params.yaml"),
) -> None:
    """Assess one scan with the served ensemble (or --in-process): measurements, segmentation, tissue, prognosis."""
    from serving.settings import serving_settings

    settings = serving_settings(profile, params).override(registry=None if registry is None else str(registry))
    files = _read_inputs(scan, photo, camera, meta)
    result = _assess_here(settings, files) if in_process else _assess_served(settings, url, files)
    typer.echo(json.dumps(result) if as_json else assessment_table(result))


def _read_inputs(scan: Path, photo: Path | None, camera: Path | None, meta: Path | None) -> dict:
    from features.io import read_camera, read_metadata

    if photo is not None and camera is None:
        fail("a photo needs its camera: pass --camera with --photo, or leave the photo out")
    return {"scan": scan.read_bytes(), "photo": None if photo is None else photo.read_bytes(),
            "camera": None if camera is None else read_camera(camera).to_dict(),
            "metadata": None if meta is None else read_metadata(meta)}


def _assess_served(settings, url: str | None, files: dict) -> dict:
    from serving.client import ServiceError, assess_remote

    try:
        return assess_remote(url or settings.url(settings.transformer_port), settings.model_name, **files)
    except ServiceError as e:
        fail(str(e))


def _assess_here(settings, files: dict) -> dict:
    """The transformer's validation and the predictor's assessment, in this process (no feature store)."""
    from kserve.errors import InvalidInput

    from features.stopwatch import Stopwatch
    from serving.assessment import assess as run_assess
    from serving.ensemble import Ensemble, ModelNotReady
    from serving.payload import assemble

    try:
        request = assemble({**files, "scan_format": None}, settings.max_points)
        _check_champion(settings)
        ensemble = Ensemble.from_registry(settings.registry_path, settings.alias)
    except (InvalidInput, ModelNotReady) as e:
        fail(str(e))
    clock = Stopwatch()
    result = run_assess(ensemble, request.scan, request.photo, request.camera, clock=clock)
    return {**result, "timings_ms": {k: round(v, 1) for k, v in clock.ms.items()}}


def assessment_table(result: dict) -> str:
    """The assessment as aligned text: measurements (or why there are none), segmentation, flags, prognosis."""
    from coherency.report import measurement_table

    seg = result["segmentation"]
    lines = [measurement_table(result) if result["area_cm2"] is not None else "not measured (see the flags)",
             f"segmentation: {seg['wound_points']} of {seg['points']} points wound, confidence "
             f"{result['confidence']['segmentation']:.2f}, photo {'used' if seg['photo_used'] else 'not used'}"]
    lines += [f"flag {f['code']}: {f['message']}" for f in result["flags"]]
    if result.get("prognosis"):
        lines.append("prognosis: " + ", ".join(f"{k} {v}" for k, v in result["prognosis"].items()))
    models = ", ".join(f"{k} v{v}" for k, v in result["models"].items())
    lines.append(f"models: {models}; data {result['data_version']}")
    return "\n".join(lines)
