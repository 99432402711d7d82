"""Watching the served models: the inference log every assessment appends to, and the Prometheus drift gauges.

The predictor calls `record_inference` after every assessment: one row (inputs and outputs, see
serving.inference_features, no patient identifiers) appended to a SQLite file, which several server processes
may share. `coherency monitor` (serving.monitor_drift) compares the latest rows with the training reference
and writes a drift summary; `DriftCollector` serves that summary's numbers on the predictor's /metrics.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from prometheus_client.core import GaugeMetricFamily, Metric

from features.io import Scan
from serving.inference_features import inference_row

log = logging.getLogger(__name__)

SUMMARY_FILE = "drift_summary.json"
SQLITE_TIMEOUT_S = 10.0  # a writer waits this long for another process's append instead of failing
_SCHEMA = "CREATE TABLE IF NOT EXISTS inferences (id INTEGER PRIMARY KEY AUTOINCREMENT, logged_at TEXT NOT NULL, " \
          "row TEXT NOT NULL)"


def record_inference(log_path: Path, scan: Scan, result: Mapping | None, metadata: Mapping | None = None) -> None:
    """Append this inference's monitored row to the log; a failure is a warning, never the request's error."""
    try:
        row = inference_row(scan, result, metadata)
        append_rows(Path(log_path), [row])
    except Exception as e:  # monitoring must not fail an assessment that succeeded
        log.warning("inference not logged to %s: %s: %s", log_path, type(e).__name__, e)


def append_rows(log_path: Path, rows: list[Mapping]) -> None:
    """Append rows (JSON objects) with the current UTC time, in one transaction."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC).isoformat(timespec="milliseconds")
    payload = [(now, json.dumps({k: _finite(v) for k, v in row.items()}, allow_nan=False)) for row in rows]
    with _database(log_path) as db:
        db.executemany("INSERT INTO inferences (logged_at, row) VALUES (?, ?)", payload)


def read_log(log_path: Path, window: int | None = None) -> pd.DataFrame:
    """The latest `window` logged rows (all when None), oldest first, with their `logged_at` time."""
    if not Path(log_path).is_file():
        raise FileNotFoundError(f"no inference log at {log_path}; serve some assessments first")
    limit = -1 if window is None else int(window)  # SQLite: LIMIT -1 is no limit
    with _database(Path(log_path)) as db:
        rows = db.execute("SELECT logged_at, row FROM inferences ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
    return pd.DataFrame([{**json.loads(row), "logged_at": at} for at, row in reversed(rows)])


@contextmanager
def _database(path: Path) -> Iterator[sqlite3.Connection]:
    """One transaction on the log, the table in place; WAL lets the monitor read beside the writers."""
    db = sqlite3.connect(path, timeout=SQLITE_TIMEOUT_S)
    try:
        if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            db.execute("PRAGMA journal_mode=WAL")  # persistent: set once per file
        with db:  # commits, or rolls back on an error
            db.execute(_SCHEMA)
            yield db
    finally:
        db.close()


def _finite(value: object) -> object:
    """NaN and infinities as None: JSON has no such numbers."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


# ---------------------------------------------------------------------------------------------- the summary


def write_summary(reports_dir: Path, summary: Mapping) -> Path:
    """Write the drift summary atomically, so a scrape never reads half a file."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    target = reports_dir / SUMMARY_FILE
    handle, tmp = tempfile.mkstemp(dir=reports_dir, suffix=".tmp")
    with os.fdopen(handle, "w") as fh:
        json.dump(summary, fh, indent=1)
    os.replace(tmp, target)
    return target


def read_summary(reports_dir: Path) -> dict | None:
    """The latest drift summary, or None when `coherency monitor` has not written one (or it is unreadable)."""
    try:
        return json.loads((Path(reports_dir) / SUMMARY_FILE).read_text())
    except (OSError, ValueError):
        return None


class DriftCollector:
    """Prometheus collector: the latest drift summary as gauges, read from disk at every scrape.

    Reading on scrape (not at start-up) lets `coherency monitor`, a separate process, update what the
    predictor's /metrics shows without any signal between them.
    """

    def __init__(self, reports_dir: Path) -> None:
        self.reports_dir = Path(reports_dir)

    def describe(self) -> Iterator[Metric]:
        """The metric names, so that the registry refuses a second collector that would clash."""
        yield _available(None)
        yield from summary_metrics({})

    def collect(self) -> Iterator[Metric]:
        """Gauges from the summary on disk; only `coherency_drift_summary_available` 0 when there is none."""
        summary = read_summary(self.reports_dir)
        yield _available(summary is not None)
        if summary is not None:
            yield from summary_metrics(summary)


def _available(found: bool | None) -> Metric:
    """1 when a summary was found, 0 when not; no sample for None (describe)."""
    family = GaugeMetricFamily("coherency_drift_summary_available", "1 when `coherency monitor` wrote a summary")
    if found is not None:
        family.add_metric([], float(found))
    return family


def summary_metrics(summary: Mapping) -> Iterator[Metric]:
    """The gauge families of a drift summary (no samples for an empty one)."""
    share = GaugeMetricFamily("coherency_drift_share", "Share of monitored columns that drifted", labels=["kind"])
    detected = GaugeMetricFamily("coherency_drift_detected", "1 when the drift share exceeds its alert threshold",
                                 labels=["kind"])
    score = GaugeMetricFamily("coherency_drift_column_score", "Per-column drift score (see the method label)",
                              labels=["kind", "column", "method"])
    column_drifted = GaugeMetricFamily("coherency_drift_column_detected", "1 when the column's score is past "
                                       "its threshold", labels=["kind", "column"])
    window = GaugeMetricFamily("coherency_drift_window_inferences", "Logged inferences the last check compared")
    when = GaugeMetricFamily("coherency_drift_last_check_timestamp_seconds", "When the last drift check ran")
    for kind in ("data", "prediction"):
        part = summary.get(kind)
        if not part:
            continue
        share.add_metric([kind], part["drift_share"])
        detected.add_metric([kind], float(part["alert"]))
        for column, value in part["scores"].items():
            score.add_metric([kind, column, part["method"].get(column, "")], value)
            column_drifted.add_metric([kind, column], float(column in part["drifted"]))
    if "current_rows" in summary:
        window.add_metric([], summary["current_rows"])
        when.add_metric([], summary.get("checked_at_unix", time.time()))
    yield from (share, detected, score, column_drifted, window, when)
