"""Drift is caught (another sensor's noise, other skin tones, a new body site), undrifted data is not; the CLI."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from typer.testing import CliRunner

from coherency.cli import app
from serving.inference_features import INPUT_COLUMNS, PREDICTION_COLUMNS
from serving.monitor_drift import MonitorSettings, check_drift, prepare
from serving.monitor_reference import save_reference
from serving.monitor_workspace import PANEL_GROUPS
from serving.monitoring import DriftCollector, append_rows

os.environ.setdefault("DO_NOT_TRACK", "1")
SETTINGS = MonitorSettings(min_rows=8)  # the defaults of params.yaml, for the small test windows
# the columns each simulated drift must move (others may move too)
EXPECTED = {"sensor_noise": {"noise_mm"}, "skin_tones": {"skin_l"}, "body_site": {"body_site", "curvature_minor"}}


def verdicts(reference, window) -> dict[str, dict]:
    return {kind: check_drift(prepare(reference), prepare(window), kind, SETTINGS).part
            for kind in ("data", "prediction")}


def test_undrifted_data_raises_no_alarm(reference_frame, windows):
    result = verdicts(reference_frame, windows["undrifted"])
    assert not result["data"]["alert"] and not result["prediction"]["alert"], result
    assert result["data"]["skipped"] == []  # every input column was tested
    assert set(result["prediction"]["skipped"]) == {"segmentation_confidence", "prognosis_p12w"}  # no truth for them


@pytest.mark.parametrize("scenario", sorted(EXPECTED))
def test_each_drift_is_caught_in_the_columns_it_moves(reference_frame, windows, scenario):
    data = verdicts(reference_frame, windows[scenario])["data"]
    assert data["alert"], data
    assert EXPECTED[scenario] <= set(data["drifted"]), data["scores"]


def test_the_dashboard_plots_every_monitored_column():
    assert {c for group in PANEL_GROUPS.values() for c in group} == set(INPUT_COLUMNS + PREDICTION_COLUMNS)


# ---------------------------------------------------------------------------------------------- the CLI


@pytest.fixture
def project(tmp_path, monkeypatch, reference_frame):
    """A working folder with its own params.yaml (tiny profile: 8 rows suffice) and the saved reference."""
    section = {"log": "mon/inference.sqlite", "reports": "mon/reports", "workspace": "mon/workspace",
               "reference": "mon/reference.parquet", "phantoms_dir": "no_phantoms", "window": 50,
               "profiles": {"tiny": {"min_rows": 8}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"monitoring": section}))
    monkeypatch.chdir(tmp_path)
    save_reference(reference_frame, tmp_path / "mon" / "reference.parquet")
    return tmp_path


def monitor(*args: str):
    return CliRunner().invoke(app, ["monitor", *args, "--profile", "tiny"])


def test_cli_without_a_log_or_with_too_few_rows_exits_2(project, windows):
    missing = monitor()
    assert missing.exit_code == 2 and "no inference log" in missing.output
    append_rows(project / "mon" / "inference.sqlite", windows["undrifted"].head(5).to_dict("records"))
    few = monitor()
    assert few.exit_code == 2 and "at least 8" in few.output


def test_cli_without_a_reference_or_phantoms_exits_2(project, windows):
    (project / "mon" / "reference.parquet").unlink()
    append_rows(project / "mon" / "inference.sqlite", windows["undrifted"].to_dict("records"))
    result = monitor()
    assert result.exit_code == 2 and "no reference" in result.output


def test_cli_exits_0_without_drift_and_1_with_it_writing_reports_gauges_and_snapshots(project, windows):
    log, reports = project / "mon" / "inference.sqlite", project / "mon" / "reports"
    append_rows(log, windows["undrifted"].to_dict("records"))
    calm = monitor()
    assert calm.exit_code == 0, calm.output
    for name in ("data_drift.html", "data_drift.json", "prediction_drift.html", "prediction_drift.json",
                 "drift_summary.json", "drift.prom"):
        assert (reports / name).stat().st_size > 0, name
    assert 'coherency_drift_detected{kind="data"} 0.0' in (reports / "drift.prom").read_text()

    append_rows(log, windows["skin_tones"].to_dict("records"))
    alarmed = monitor("--window", "8")  # the skin-tone window only
    assert alarmed.exit_code == 1, alarmed.output
    assert "ALERT data drift share" in alarmed.output and "skin_l" in alarmed.output
    summary = json.loads((reports / "drift_summary.json").read_text())
    assert summary["alert"] and summary["current_rows"] == 8
    registry = CollectorRegistry()
    registry.register(DriftCollector(reports))
    assert 'coherency_drift_detected{kind="data"} 1.0' in generate_latest(registry).decode()
    assert _workspace_runs(project / "mon" / "workspace") == 4  # two checks, a data and a prediction run each


def _workspace_runs(path) -> int:
    from evidently.ui.workspace import Workspace

    workspace = Workspace(str(path))
    (project,) = workspace.search_project("coherency drift")
    return len(workspace.list_runs(project.id))


def test_cli_builds_the_reference_from_written_phantoms_without_identifiers(project):
    from features.phantoms import write_phantoms
    from tests.monitoring.conftest import REFERENCE

    write_phantoms(2, project / "phantoms", seed=7, config=REFERENCE)
    result = CliRunner().invoke(app, ["monitor", "reference", "--phantoms", "phantoms", "--profile", "tiny"])
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(project / "mon" / "reference.parquet")
    assert len(frame) == 2 and set(frame.columns) == set(INPUT_COLUMNS + PREDICTION_COLUMNS)
    assert frame["area_cm2"].notna().all() and frame["wound_fraction"].between(0, 0.5).all()  # truth and labels

    (project / "mon" / "reference.parquet").write_bytes(b"not parquet")
    append_rows(project / "mon" / "inference.sqlite", [{"points": 1}] * 8)
    damaged = monitor()
    assert damaged.exit_code == 2 and "unreadable" in damaged.output
