"""The inference log (no identifiers, concurrent writers, never raising), its feature row, and the drift gauges."""

from __future__ import annotations

import json
import logging
import multiprocessing
import sqlite3
import time

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from features.io import Scan
from serving.inference_features import INPUT_COLUMNS, PREDICTION_COLUMNS, rgb_to_lab, scan_statistics
from serving.monitoring import DriftCollector, read_log, record_inference, write_summary
from tests.conftest import bowl_scan

IDENTIFIERS = {"patient_id": "P-4711", "wound_id": "W-0815", "name": "Jane Example", "date_of_birth": "1950-02-03",
               "captured_at": "2026-01-01T09:00:00Z"}
METADATA = {**IDENTIFIERS, "body_site": "heel", "device": "phantom LiDAR"}
RESULT = {"area_cm2": 3.1, "volume_cm3": 0.8, "max_depth_mm": 4.2, "segmentation": {
    "points": 1000, "wound_points": 100, "mean_confidence": 0.9}, "prognosis": {"wound_id": "W-0815", "p_gbm": 0.6}}


def test_a_logged_row_holds_the_features_and_outputs_and_no_identifier(tmp_path):
    log_path = tmp_path / "deep" / "inference.sqlite"
    record_inference(log_path, bowl_scan(), RESULT, METADATA)
    record_inference(log_path, bowl_scan(1), {"segmentation": None}, None)  # an unmeasured wound, no metadata
    frame = read_log(log_path)
    assert len(frame) == 2
    assert set(frame.columns) == set(INPUT_COLUMNS) | set(PREDICTION_COLUMNS) | {"logged_at"}
    first = frame.iloc[0]
    assert (first["body_site"], first["wound_fraction"], first["prognosis_p12w"]) == ("heel", 0.1, 0.6)
    assert frame.iloc[1][list(PREDICTION_COLUMNS)].isna().all()
    stored = " ".join(row for (row,) in sqlite3.connect(log_path).execute("SELECT row FROM inferences"))
    assert not any(value in stored for value in IDENTIFIERS.values())


def test_a_failed_append_is_a_warning_not_an_error(tmp_path, caplog):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with caplog.at_level(logging.WARNING, logger="serving.monitoring"):
        record_inference(blocker / "inference.sqlite", bowl_scan(), RESULT, METADATA)
    assert "inference not logged" in caplog.text


def _append_many(log_path: str, seed: int, count: int) -> None:
    scan = bowl_scan(seed, spacing=2e-3)
    for _ in range(count):
        record_inference(log_path, scan, RESULT, METADATA)


def test_two_processes_append_concurrently_without_losing_rows(tmp_path):
    log_path = tmp_path / "inference.sqlite"
    context = multiprocessing.get_context("spawn")  # fresh interpreters: no shared connection state
    workers = [context.Process(target=_append_many, args=(str(log_path), seed, 40)) for seed in (1, 2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0, 0]
    ids = [i for (i,) in sqlite3.connect(log_path).execute("SELECT id FROM inferences")]
    assert len(ids) == len(set(ids)) == 80


def test_logging_a_500k_point_scan_takes_milliseconds(tmp_path):
    rng = np.random.default_rng(0)
    base = bowl_scan(spacing=2.5e-4)
    pick = rng.integers(0, len(base), 500_000)
    scan = Scan(base.points[pick] + rng.normal(0, 1e-5, (500_000, 3)), base.colors[pick])
    record_inference(tmp_path / "log.sqlite", scan, RESULT, METADATA)  # creates the file
    times = []
    for _ in range(5):
        start = time.perf_counter()
        record_inference(tmp_path / "log.sqlite", scan, RESULT, METADATA)
        times.append(time.perf_counter() - start)
    assert np.median(times) < 0.1  # about 10 ms alone; generous for two busy shared cores


def test_scan_statistics_measure_the_noise_and_colour_of_the_skin():
    stats = scan_statistics(bowl_scan(noise=3e-4))
    assert 0.2 < stats["noise_mm"] < 0.45  # Gaussian range noise of 0.3 mm
    assert 0.45 < stats["spacing_mm"] < 0.75  # a jittered 0.6 mm grid
    assert stats["curvature_minor"] < 2.0  # flat skin around the bowl: radius over 0.5 m
    noisier = scan_statistics(bowl_scan(noise=1.2e-3))
    assert noisier["noise_mm"] > 2.5 * stats["noise_mm"]
    l_star, a_star, b_star = rgb_to_lab(np.array([[255, 255, 255]]))[0]
    assert l_star == pytest.approx(100, abs=0.1) and abs(a_star) < 0.5 and abs(b_star) < 0.5


def _scrape(collector: DriftCollector) -> str:
    registry = CollectorRegistry()
    registry.register(collector)
    return generate_latest(registry).decode()


def test_the_collector_serves_the_latest_summary_as_gauges(tmp_path):
    collector = DriftCollector(tmp_path)
    assert "coherency_drift_summary_available 0.0" in _scrape(collector)
    assert "coherency_drift_share" not in _scrape(collector).replace("# HELP", "").split("available")[-1]
    summary = {"current_rows": 42, "checked_at_unix": 1.7e9,
               "data": {"drift_share": 0.25, "alert": True, "scores": {"skin_l": 1e-6, "noise_mm": 0.4},
                        "method": {"skin_l": "ks", "noise_mm": "ks"}, "drifted": ["skin_l"]},
               "prediction": {"drift_share": 0.0, "alert": False, "scores": {"area_cm2": 0.5},
                              "method": {"area_cm2": "ks"}, "drifted": []}}
    write_summary(tmp_path, summary)
    text = _scrape(collector)  # read at scrape time: no restart needed after `coherency monitor`
    for line in ('coherency_drift_share{kind="data"} 0.25', 'coherency_drift_detected{kind="data"} 1.0',
                 'coherency_drift_detected{kind="prediction"} 0.0', "coherency_drift_window_inferences 42.0",
                 'coherency_drift_column_score{column="skin_l",kind="data",method="ks"} 1e-06',
                 'coherency_drift_column_detected{column="skin_l",kind="data"} 1.0',
                 'coherency_drift_column_detected{column="noise_mm",kind="data"} 0.0',
                 "coherency_drift_summary_available 1.0"):
        assert line in text
    json.loads((tmp_path / "drift_summary.json").read_text())
