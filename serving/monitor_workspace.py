"""The Evidently UI workspace: one project whose dashboard plots drift over time, one snapshot per check."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from serving.inference_features import METADATA_COLUMNS, PREDICTION_COLUMNS

PROJECT = "coherency drift"
DESCRIPTION = "Served LiDAR wound assessments against the training phantoms (`coherency monitor`)."
SHARE, DRIFT = "evidently:metric_v2:DriftedColumnsCount", "evidently:metric_v2:ValueDrift"
# every monitored column, grouped by the drift it reveals (a test checks none is left out)
PANEL_GROUPS = {"Sensor: p-values (below the threshold = drifted)": ("points", "spacing_mm", "noise_mm", "extent_mm"),
                "Skin tone: p-values": ("skin_l", "skin_a", "skin_b", "skin_l_spread", "skin_fraction"),
                "Body site: p-values": ("curvature_major", "curvature_minor", "shape_misfit_mm", *METADATA_COLUMNS),
                "Predictions: p-values": PREDICTION_COLUMNS}


def add_snapshots(workspace_dir: Path, snapshots: Mapping[str, Any]) -> str:
    """Add each kind's snapshot (tagged with its kind) to the project, made on first use; returns its id."""
    from evidently.ui.workspace import Workspace

    workspace = Workspace(str(workspace_dir))
    found = workspace.search_project(PROJECT)
    project = found[0] if found else _create_project(workspace)
    for snapshot in snapshots.values():
        if snapshot is not None:
            workspace.add_run(project.id, snapshot)
    return str(project.id)


def _create_project(workspace: Any) -> Any:
    """The project with its dashboard: drifted shares over time, then the p-values of each column."""
    from evidently.sdk.models import PanelMetric
    from evidently.sdk.panels import counter_panel, line_plot_panel

    project = workspace.create_project(PROJECT, DESCRIPTION)
    board = project.dashboard
    # one panel per kind: Evidently's local storage matches a series to the first filter with its metric and
    # labels before it looks at tags, so two filters told apart only by tag share one panel badly
    for kind in ("data", "prediction"):
        share = PanelMetric(legend=f"{kind} drift share", metric=SHARE, metric_labels={"value_type": "share"},
                            tags=[kind])
        board.add_panel(counter_panel(f"Drifted share of {kind} columns (latest)", [share], size="half"))
    for kind in ("data", "prediction"):
        share = PanelMetric(legend=kind, metric=SHARE, metric_labels={"value_type": "share"}, tags=[kind])
        board.add_panel(line_plot_panel(f"Drifted share of {kind} columns over time", [share], size="half"))
    for title, columns in PANEL_GROUPS.items():
        board.add_panel(line_plot_panel(title, [PanelMetric(legend=c, metric=DRIFT, metric_labels={"column": c})
                                                for c in columns], size="half"))
    return project


def serve_ui(workspace_dir: Path, port: int, host: str = "127.0.0.1") -> None:
    """Evidently's own UI service on the workspace (blocks until interrupted)."""
    from evidently.ui.service.app import get_config, run

    workspace_dir.mkdir(parents=True, exist_ok=True)
    run(get_config(host=host, port=port, workspace=str(workspace_dir)))
