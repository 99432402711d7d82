"""Scan I/O: round trips through every format, and clear errors for every kind of bad file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from features.io import Scan, ScanError, camera_from_dict, read_camera, read_scan, write_camera, write_pcd, write_ply


@pytest.mark.parametrize("binary", [True, False])
def test_ply_round_trip_keeps_every_attribute(tmp_path, bowl, binary):
    bowl.tissue = bowl.label.copy()
    path = tmp_path / "scan.ply"
    write_ply(path, bowl, binary=binary)
    back = read_scan(path)
    np.testing.assert_allclose(back.points, bowl.points, atol=1e-6)
    np.testing.assert_array_equal(back.colors, bowl.colors)
    np.testing.assert_array_equal(back.label, bowl.label)
    np.testing.assert_array_equal(back.tissue, bowl.tissue)


def test_pcd_round_trip(tmp_path, bowl):
    path = tmp_path / "scan.pcd"
    write_pcd(path, bowl)
    back = read_scan(path)
    np.testing.assert_allclose(back.points, bowl.points, atol=1e-6)
    np.testing.assert_array_equal(back.colors, bowl.colors)
    np.testing.assert_array_equal(back.label, bowl.label)


def test_ascii_pcd(tmp_path):
    path = tmp_path / "a.pcd"
    path.write_text("VERSION 0.7\nFIELDS x y z label\nSIZE 4 4 4 1\nTYPE F F F U\nCOUNT 1 1 1 1\n"
                    "WIDTH 2\nHEIGHT 1\nPOINTS 2\nDATA ascii\n0 0 0 0\n0.01 0.02 0.03 1\n")
    scan = read_scan(path)
    assert scan.points.shape == (2, 3)
    assert scan.label.tolist() == [0, 1]


def _write_points(tmp_path, points, **attrs) -> str:
    path = tmp_path / "bad.ply"
    write_ply(path, Scan(np.asarray(points, dtype=float), **attrs))
    return str(path)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_text("hello"), "not a PLY or PCD"),
        (lambda p: p.write_bytes(b""), "not a PLY or PCD"),
        (lambda p: p.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 100\n"
                                 b"property float x\nproperty float y\nproperty float z\nend_header\n" + b"\0" * 40),
         "truncated"),
        (lambda p: p.write_bytes(b"ply\nformat ascii 1.0\nelement vertex 0\nproperty float x\nproperty float y\n"
                                 b"property float z\nend_header\n"), "no points"),
    ],
)
def test_malformed_files_raise_scan_error(tmp_path, make, message):
    path = tmp_path / "scan.ply"
    make(path)
    with pytest.raises(ScanError, match=message):
        read_scan(path)


def test_non_finite_coordinates_are_refused(tmp_path):
    with pytest.raises(ScanError, match="NaN or infinite"):
        read_scan(_write_points(tmp_path, [[0, 0, 0], [np.nan, 0, 0]]))


def test_millimetres_are_recognised(tmp_path):
    with pytest.raises(ScanError, match="millimetres"):
        read_scan(_write_points(tmp_path, [[0, 0, 0], [40.0, 30.0, 5.0]]))


def test_point_limit(tmp_path):
    path = _write_points(tmp_path, np.zeros((50, 3)))
    with pytest.raises(ScanError, match="exceed the limit"):
        read_scan(path, max_points=10)


def test_out_of_range_label(tmp_path):
    path = _write_points(tmp_path, np.zeros((3, 3)), label=np.array([0, 1, 7], dtype=np.uint8))
    with pytest.raises(ScanError, match="'label' values"):
        read_scan(path)


def test_camera_round_trip_and_projection(tmp_path):
    from features.io import Camera

    cam = Camera(640, 480, 500.0, 500.0, 320.0, 240.0, np.eye(4))
    write_camera(tmp_path / "c.json", cam)
    back = read_camera(tmp_path / "c.json")
    pix, z = back.project(np.array([[0.01, -0.02, 0.5]]))
    np.testing.assert_allclose(pix[0], [500 * 0.02 + 320, 500 * -0.04 + 240])
    assert z[0] == pytest.approx(0.5)


@pytest.mark.parametrize("payload", ["[1, 2]", "{not json", json.dumps({"width": 10})])
def test_bad_camera_files(tmp_path, payload):
    path = tmp_path / "c.json"
    path.write_text(payload)
    with pytest.raises(ScanError):
        read_camera(path)


def _camera_fields() -> dict:
    return {"width": 64, "height": 48, "fx": 50.0, "fy": 50.0, "cx": 32.0, "cy": 24.0,
            "world_to_camera": np.eye(4).tolist()}


def test_camera_from_dict_is_read_camera_without_the_file(tmp_path):
    from features.io import Camera

    cam = Camera(64, 48, 50.0, 50.0, 32.0, 24.0, np.eye(4))
    write_camera(tmp_path / "c.json", cam)
    from_file, from_dict = read_camera(tmp_path / "c.json"), camera_from_dict(json.loads(json.dumps(cam.to_dict())))
    assert from_dict.to_dict() == from_file.to_dict()


@pytest.mark.parametrize(("payload", "message"), [
    ([1, 2], "must be an object"),
    ({"width": 10}, "lacks height"),
    ({**_camera_fields(), "width": float("inf")}, "must be numbers"),  # JSON's Infinity: int() overflows
    ({**_camera_fields(), "world_to_camera": [[1, 0], [0, 1]]}, "finite 4x4"),
    ({**_camera_fields(), "fx": -1}, "positive"),
])
def test_camera_from_dict_names_what_is_wrong(payload, message):
    with pytest.raises(ScanError, match=f"^upload: .*{message}"):
        camera_from_dict(payload, "upload")


@pytest.mark.parametrize(("line", "value"), [("POINTS", "1.5"), ("POINTS", ""), ("POINTS", "-1"), ("SIZE", "4 x 4"),
                                             ("COUNT", "1 one 1")])
def test_pcd_header_numbers_must_be_whole(tmp_path, line, value):
    # found by the payload fuzz test: these used to escape as ValueError / IndexError
    header = {"SIZE": "4 4 4", "COUNT": "1 1 1", "POINTS": "1", line: value}
    path = tmp_path / "h.pcd"
    path.write_text(f"FIELDS x y z\nSIZE {header['SIZE']}\nTYPE F F F\nCOUNT {header['COUNT']}\nWIDTH 1\nHEIGHT 1\n"
                    f"POINTS {header['POINTS']}\nDATA ascii\n0 0 0\n")
    with pytest.raises(ScanError, match=f"PCD header {line}"):
        read_scan(path)
