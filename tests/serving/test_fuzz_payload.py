"""Thousands of malformed requests through the decoders: each is decoded or refused with ScanError/InvalidInput.

tests/features/test_fuzz_io.py fuzzes scan files; this throws whole request bodies at what the servers run on
them (serving.payload for the transformer, serving.wire for the predictor): mutated scans inside V2 binary and
V1 base64 bodies, broken JSON headers and tensor framing, hostile cameras, photos and point arrays. A seeded
generator keeps every failure reproducible: the message names the case number.
"""

from __future__ import annotations

import json
import re
import time

import numpy as np
import pytest
from kserve.errors import InvalidInput

from features.io import Scan, ScanError, write_ply
from serving.payload import decode_request
from serving.wire import from_transformer, infer_request_from_bytes
from tests.serving.payloads import camera_dict, photo_bytes, scan_bytes, v1_body, v2_body

CASES = 4000
MAX_POINTS = 5_000
HUGE = [b"0", b"1", b"-5", b"2147483648", b"4294967295", b"1000000000000", b"1e9", b"abc", b""]
TYPES = [b"float", b"double", b"uchar", b"int", b"list uchar int", b"float32", b"char"]


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> list[bytes]:
    folder = tmp_path_factory.mktemp("seeds")
    nan = Scan(np.array([[0.0, 0.0, 0.0], [np.nan, 0.0, 0.0], [0.01, 0.0, 0.0]]))
    write_ply(folder / "nan.ply", nan)
    ascii_pcd = (b"VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nPOINTS 2\nDATA ascii\n"
                 b"0 0 0\n0.01 0 0\n")
    return [scan_bytes(folder, spacing=4e-3), scan_bytes(folder, spacing=4e-3, binary=False),
            scan_bytes(folder, "pcd", spacing=4e-3), ascii_pcd, (folder / "nan.ply").read_bytes()]


def mutate(raw: bytes, rng: np.random.Generator) -> bytes:
    """One to four random edits: byte flips, cuts, insertions, and header lies about counts, types, formats."""
    data = bytearray(raw)
    for _ in range(rng.integers(1, 5)):
        kind = rng.integers(0, 6)
        at = int(rng.integers(0, max(len(data), 1)))
        if kind == 0 and data:
            data[at] = int(rng.integers(0, 256))
        elif kind == 1:
            data = data[:at]
        elif kind == 2:
            data[at:at] = rng.bytes(int(rng.integers(1, 24)))
        elif kind == 3:  # the point count a header announces
            data = bytearray(re.sub(rb"(element vertex|POINTS|WIDTH) \S*", lambda m: m.group(1) + b" " +
                                    HUGE[rng.integers(len(HUGE))], bytes(data), count=1))
        elif kind == 4:
            data = bytearray(bytes(data).replace(b"float", TYPES[rng.integers(len(TYPES))], 1))
        else:
            swaps = [(b"binary_little_endian", b"ascii"), (b"ascii", b"binary_big_endian"), (b"ply", b"plx"),
                     (b"DATA binary", b"DATA binary_compressed"), (b"DATA ascii", b"DATA binary")]
            old, new = swaps[rng.integers(len(swaps))]
            data = bytearray(bytes(data).replace(old, new, 1))
    return bytes(data)


def hostile_camera(rng: np.random.Generator) -> object:
    camera = camera_dict()
    key = ["width", "height", "fx", "cx", "world_to_camera", None][rng.integers(6)]
    if key is None:
        return [camera, "not an object", 7, None][rng.integers(4)]
    values = [float("nan"), float("inf"), -1, 0, "12", [1, 2], {"a": 1}, 1e308, True, None]
    camera[key] = values[rng.integers(len(values))]
    return camera


def v2_case(scan: bytes, rng: np.random.Generator) -> None:
    photo = mutate(photo_bytes(), rng) if rng.random() < 0.2 else None
    body, length = v2_body(scan, photo, camera_dict() if photo or rng.random() < 0.3 else None,
                           {"body_site": "heel"} if rng.random() < 0.5 else None)
    choice = rng.choice(5, p=[0.1, 0.1, 0.15, 0.1, 0.55])  # most bodies are sound around a mutated scan
    if choice == 0:  # the header's length is off
        length = int(length + rng.integers(-40, 40))
    elif choice == 1:  # bytes flipped in the JSON header
        body = mutate(body[:length], rng) + body[length:]
    elif choice == 2:  # a binary_data_size, shape or datatype lies
        header = json.loads(body[:length])
        tensor = header["inputs"][rng.integers(len(header["inputs"]))]
        field, lie = [("parameters", {"binary_data_size": int(rng.integers(-5, 10**7))}),
                      ("shape", [int(rng.integers(-2, 5))] * int(rng.integers(0, 3))),
                      ("datatype", ["FP32", "UINT8", "BOOL", "FP16", "nope"][rng.integers(5)])][rng.integers(3)]
        tensor[field] = lie
        new = json.dumps(header).encode()
        body, length = new + body[length:], len(new)
    elif choice == 3:
        body = mutate(body, rng)
    decode_request(infer_request_from_bytes(body, length, "coherency"), MAX_POINTS)


def v1_case(scan: bytes, rng: np.random.Generator) -> None:
    body = v1_body(scan, photo_bytes() if rng.random() < 0.3 else None)
    instance = body["instances"][0]
    if "photo" in instance or rng.random() < 0.3:
        instance["camera"] = hostile_camera(rng) if rng.random() < 0.5 else camera_dict()
    if rng.random() < 0.2:
        instance["scan"]["b64"] = mutate(instance["scan"]["b64"].encode(), rng).decode("latin-1")
    if rng.random() < 0.1:
        instance["metadata"] = [None, 3, "x", {"wound_id": 5}][rng.integers(4)]
    decode_request(body, MAX_POINTS)


def wire_case(rng: np.random.Generator) -> None:
    n = int(rng.integers(0, 40))
    points = rng.normal(0, [1e-2, 1e-2, 10.0][rng.integers(3)], (n, 3 if rng.random() < 0.8 else 2))
    if n and rng.random() < 0.3:
        points[rng.integers(n)] = [np.nan, np.inf, 1e308][rng.integers(3)]
    instance = {"points": points.tolist() if rng.random() < 0.9 else "points"}
    if rng.random() < 0.3:
        instance["colors"] = rng.integers(-5, 300, (int(rng.integers(0, 40)), 3)).tolist()
    if rng.random() < 0.3:
        instance["camera"], instance["photo"] = hostile_camera(rng), rng.integers(0, 255, (30, 40, 3)).tolist()
    from_transformer({"instances": [instance]}, MAX_POINTS)


@pytest.mark.timeout(180)  # a decoder that hangs on a hostile header fails here instead of stalling the suite
def test_thousands_of_malformed_requests_are_decoded_or_refused(seeds):
    rng = np.random.default_rng(2026)
    outcomes = {"decoded": 0, "refused": 0}
    start = time.monotonic()
    for case in range(CASES):
        scan = mutate(seeds[case % len(seeds)], rng) if rng.random() < 0.8 else seeds[case % len(seeds)]
        try:
            if case % 3 == 0:
                v2_case(scan, rng)
            elif case % 3 == 1:
                v1_case(scan, rng)
            else:
                wire_case(rng)
            outcomes["decoded"] += 1
        except (ScanError, InvalidInput):
            outcomes["refused"] += 1
        except Exception as e:  # anything else would be a 500 from the server
            raise AssertionError(f"case {case}: {type(e).__name__}: {e}") from e
    assert outcomes["decoded"] > 100 and outcomes["refused"] > CASES / 2, outcomes  # both paths were exercised
    assert time.monotonic() - start < 120
