"""Thousands of malformed scans: the reader answers each with ScanError or a valid scan, quickly."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.io import Scan, ScanError, read_scan, write_ply


def _valid_ply_bytes(tmp_path, binary: bool) -> bytes:
    rng = np.random.default_rng(1)
    scan = Scan(rng.uniform(-0.05, 0.05, (64, 3)), colors=rng.integers(0, 255, (64, 3)).astype(np.uint8),
                label=(rng.random(64) < 0.3).astype(np.uint8))
    path = tmp_path / f"seed_{binary}.ply"
    write_ply(path, scan, binary=binary)
    return path.read_bytes()


def _read_or_refuse(path) -> None:
    try:
        scan = read_scan(path)
    except ScanError:
        return
    assert np.isfinite(scan.points).all() and len(scan) > 0


@pytest.mark.timeout(300)
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_plys_never_crash(tmp_path, data):
    original = _valid_ply_bytes(tmp_path, binary=data.draw(st.booleans()))
    raw = bytearray(original)
    for _ in range(data.draw(st.integers(1, 8))):
        kind = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = data.draw(st.integers(0, max(len(raw) - 1, 0)))
        if kind == "flip" and raw:
            raw[pos] = data.draw(st.integers(0, 255))
        elif kind == "cut":
            raw = raw[:pos]
        else:
            raw[pos:pos] = data.draw(st.binary(min_size=1, max_size=16))
    path = tmp_path / "fuzz.ply"
    path.write_bytes(bytes(raw))
    _read_or_refuse(path)  # a hang on a hostile header trips the test's timeout


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=400))
def test_random_bytes_after_a_pcd_header(tmp_path, body):
    path = tmp_path / "fuzz.pcd"
    path.write_bytes(b"VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nPOINTS 10\nDATA binary\n" + body)
    _read_or_refuse(path)
