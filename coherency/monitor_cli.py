"""`coherency monitor`: drift of the served inferences against the training reference (exit 1 on an alert)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

monitor_app = typer.Typer(help="Drift monitoring. Without a command: compare the latest inferences with the training "
                          "reference (Evidently reports, Prometheus gauges, a dashboard snapshot); exit 1 on an "
                          "alert, 2 on bad input.",
                          invoke_without_command=True)
Profile = Annotated[str, typer.Option(help="params.yaml profile: tiny, demo or full.")]
EXIT_ALERT, EXIT_BAD_INPUT = 1, 2


def _settings(profile: str):
    """The monitoring settings, or exit 2 with one line when params.yaml's section is wrong."""
    from serving.monitor_drift import MonitorSettings

    try:
        return MonitorSettings.load(profile)
    except ValueError as e:
        _fail(str(e))


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(EXIT_BAD_INPUT)


@monitor_app.callback()
def check(
    ctx: typer.Context,
    window: Annotated[int | None, typer.Option(min=1, help="Latest inferences compared (default: params).")] = None,
    profile: Profile = "demo",
) -> None:
    """Compare the latest inferences with the reference: reports, gauges, a dashboard snapshot; exit 1 on drift."""
    if ctx.invoked_subcommand is not None:
        return
    os.environ.setdefault("DO_NOT_TRACK", "1")  # no usage telemetry from a clinical deployment
    from serving.monitor_drift import KINDS, MonitorInputError, alert_line, run_monitor

    settings = _settings(profile)
    try:
        summary = run_monitor(settings, window)
    except MonitorInputError as e:
        _fail(str(e))
    for kind in KINDS:
        part = summary[kind]
        typer.echo(f"{kind} drift: share {part['drift_share']:.2f} (alert above {part['threshold']:.2f}), "
                   f"drifted: {', '.join(part['drifted']) or 'none'}; not tested: {', '.join(part['skipped']) or '-'}")
    typer.echo(f"{summary['current_rows']} inferences against {summary['reference_rows']} reference rows; "
               f"reports in {settings.reports}; dashboard: coherency monitor ui")
    if summary["alert"]:
        typer.echo(alert_line(summary), err=True)
        raise typer.Exit(EXIT_ALERT)


@monitor_app.command("reference")
def reference(
    phantoms: Annotated[Path | None, typer.Option(help="Training phantoms (default: params).")] = None,
    profile: Profile = "demo",
) -> None:
    """Build the training reference from the phantoms and save it (parquet)."""
    from serving.monitor_reference import build_reference, save_reference

    settings = _settings(profile)
    try:
        frame = build_reference(phantoms or Path(settings.phantoms_dir))
    except (OSError, ValueError) as e:
        _fail(f"{type(e).__name__}: {e}".splitlines()[0])
    path = save_reference(frame, Path(settings.reference))
    typer.echo(f"reference: {len(frame)} phantoms -> {path}")


@monitor_app.command("ui")
def ui(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port on 127.0.0.1.")] = 8000,
    profile: Profile = "demo",
) -> None:
    """Serve the Evidently UI on the monitoring workspace (localhost only; Ctrl-C stops it)."""
    os.environ.setdefault("DO_NOT_TRACK", "1")
    from serving.monitor_workspace import serve_ui

    settings = _settings(profile)
    typer.echo(f"Evidently UI: http://127.0.0.1:{port} (workspace {settings.workspace})")
    serve_ui(Path(settings.workspace), port)
