"""The command line: JSON on the last line, a table otherwise, exit status 2 with one line for bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from features.io import Scan, write_ply
from tests.conftest import bowl_scan

MEASURE_KEYS = {"area_cm2", "volume_cm3", "max_depth_mm", "mean_depth_mm", "perimeter_cm", "length_cm",
                "width_cm", "surface_area_cm2", "tissue", "uncertainty", "quality"}


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "coherency", *args], capture_output=True, text=True, timeout=120)


HEAVY = ("torch", "open3d", "scipy", "skimage", "feast", "mlflow", "pandas", "pytorch_lightning")


def test_help_imports_no_heavy_library():
    out = run_cli("--help")
    assert out.returncode == 0 and "measure" in out.stdout
    probe = ("import sys, coherency.cli; "
             f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert loaded.returncode == 0 and loaded.stdout.strip() == "", loaded.stdout + loaded.stderr


def test_cohort_command_writes_tables_and_refuses_bad_profile(tmp_path):
    out = run_cli("data", "cohort", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "cohort" / "visits.parquet").is_file()
    assert (tmp_path / "features" / "tables" / "wound_history.parquet").is_file()
    bad = run_cli("data", "cohort", "--profile", "huge", "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and bad.stderr.startswith("error:") and len(bad.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_measure_json_on_last_line(tmp_path):
    path = tmp_path / "bowl.ply"
    write_ply(path, bowl_scan(tissue=True))
    out = run_cli("measure", str(path), "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result.keys() >= MEASURE_KEYS
    assert result["area_cm2"] == pytest.approx(np.pi, rel=0.05)  # radius 1 cm
    assert set(result["tissue"]) >= {"granulation", "slough"}


def test_measure_table(tmp_path):
    path = tmp_path / "bowl.ply"
    write_ply(path, bowl_scan())
    out = run_cli("measure", str(path))
    assert out.returncode == 0, out.stderr
    assert "volume" in out.stdout and "95% interval" in out.stdout


def _bad_inputs(tmp_path):
    text = tmp_path / "notes.ply"
    text.write_text("not a point cloud")
    trunc = tmp_path / "trunc.ply"
    write_ply(trunc, bowl_scan())
    trunc.write_bytes(trunc.read_bytes()[:5000])
    nan = tmp_path / "nan.ply"
    points = bowl_scan().points.copy()
    points[3, 1] = np.nan
    write_ply(nan, Scan(points, label=np.ones(len(points), np.uint8)))
    mm = tmp_path / "mm.ply"
    scan = bowl_scan()
    write_ply(mm, Scan(scan.points * 1000, label=scan.label))
    unlabelled = tmp_path / "nolabel.ply"
    write_ply(unlabelled, Scan(scan.points))
    no_wound = tmp_path / "nowound.ply"
    write_ply(no_wound, Scan(scan.points, label=np.zeros(len(scan), np.uint8)))
    return {"not PLY": text, "truncated": trunc, "NaN": nan, "millimetres": mm, "no label": unlabelled,
            "no wound": no_wound, "missing": tmp_path / "absent.ply"}


def test_bad_input_exits_2_with_one_line(tmp_path):
    for name, path in _bad_inputs(tmp_path).items():
        out = run_cli("measure", str(path), "--json")
        assert out.returncode == 2, (name, out.stderr)
        lines = [line for line in out.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), (name, out.stderr)
        assert "Traceback" not in out.stderr and out.stdout == ""


def test_point_limit_from_params(tmp_path):
    path = tmp_path / "big.ply"
    write_ply(path, bowl_scan())
    (tmp_path / "params.yaml").write_text("measure:\n  max_points: 1000\n")
    out = subprocess.run([sys.executable, "-m", "coherency", "measure", str(path)], capture_output=True,
                         text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 2 and "exceed the limit of 1000" in out.stderr


def test_train_and_segment_refuse_bad_arguments_in_one_line(tmp_path):
    for args in (("train", "resnet"), ("segment-photos", str(tmp_path), str(tmp_path / "out"), "--checkpoint",
                                       str(tmp_path / "missing.ckpt"))):
        out = run_cli(*args)
        assert out.returncode == 2 and out.stderr.startswith("error:"), (args, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
