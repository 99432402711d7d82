"""The request decoders without a server: V1 and V2 client bodies, the transformer -> predictor tensors, refusals."""

from __future__ import annotations

import json

import numpy as np
import orjson
import pytest
from kserve import InferInput, InferRequest
from kserve.errors import InvalidInput

from features.io import read_scan
from serving.payload import (
    AssessmentRequest,
    UnsupportedMediaType,
    decode_request,
    v2_fields,
)
from serving.wire import from_transformer, infer_request_from_bytes, to_predictor
from tests.serving.payloads import PHOTO_SIZE, camera_dict, photo_bytes, scan_bytes, v1_body, v2_body


def decode_v2(body: bytes, json_length: int | None, max_points: int = 10_000) -> AssessmentRequest:
    return decode_request(infer_request_from_bytes(body, json_length, "coherency"), max_points)


@pytest.mark.parametrize("kind", ["ply", "pcd"])
def test_v2_binary_and_v1_base64_give_the_scan_the_file_holds(tmp_path, kind):
    data = scan_bytes(tmp_path, kind)
    expected = read_scan(tmp_path / f"scan-3-0.0015.{kind}")
    meta = {"wound_id": "W-1", "body_site": "heel"}
    for request in (decode_v2(*v2_body(data, photo_bytes(), camera_dict(), meta)),
                    decode_request(v1_body(data, photo_bytes(), camera_dict(), meta), 10_000)):
        np.testing.assert_array_equal(request.scan.points, expected.points)
        np.testing.assert_array_equal(request.scan.colors, expected.colors)
        assert request.photo.shape == (PHOTO_SIZE[1], PHOTO_SIZE[0], 3) and request.photo.dtype == np.uint8
        assert request.camera.width == PHOTO_SIZE[0] and request.metadata == meta and request.history is None


def test_v2_json_strings_carry_a_text_scan(tmp_path):
    text = scan_bytes(tmp_path, binary=False).decode()
    tensor = InferInput("scan", [1], "BYTES", data=[text])
    meta = InferInput("metadata", [1], "BYTES", data=[json.dumps({"body_site": "heel"})])
    request = decode_request(InferRequest("coherency", [tensor, meta]), 10_000)
    assert len(request.scan) > 1000 and request.metadata == {"body_site": "heel"}
    body = orjson.dumps({"inputs": [{"name": "scan", "shape": [1], "datatype": "BYTES", "data": [text]}]})
    assert len(decode_v2(body, None).scan) == len(request.scan)  # a JSON body without the length header


def _v2(tmp_path, **inputs) -> InferRequest:
    tensors = []
    for name, value in inputs.items():
        tensor = InferInput(name, [1], "BYTES")
        tensor.set_data_from_numpy(np.array([value], dtype=object))
        tensors.append(tensor)
    return InferRequest("coherency", tensors)


@pytest.mark.parametrize(("inputs", "message"), [
    ({}, "no 'scan'"),
    ({"photo": b"x"}, "photo needs its camera"),
    ({"camera": b"{nope"}, "'camera' is not valid JSON"),
    ({"camera": b"[1, 2]"}, "'camera' must be a JSON object"),
    ({"camera": json.dumps({"width": 10}).encode()}, "camera JSON lacks height"),
    ({"metadata": b"3"}, "'metadata' must be a JSON object"),
    ({"scan_format": b"obj"}, "scan_format 'obj' is not supported"),
    ({"scan_format": b"\xff"}, "UTF-8"),
    ({"colour": b"red"}, "unknown input"),
    ({"photo": b"not an image", "camera": json.dumps(camera_dict()).encode()}, "not a readable JPEG or PNG"),
    ({"photo": photo_bytes(20, 10), "camera": json.dumps(camera_dict()).encode()}, "camera describes 40x30"),
])
def test_bad_v2_requests_say_what_is_wrong(tmp_path, inputs, message):
    if "scan" not in inputs and message != "no 'scan'":
        inputs = {"scan": scan_bytes(tmp_path), **inputs}
    with pytest.raises(InvalidInput, match=message):
        decode_request(_v2(tmp_path, **inputs), 10_000)


def test_bad_scans_and_tensors_are_refused(tmp_path):
    with pytest.raises(InvalidInput, match="unreadable PLY"):
        decode_request(_v2(tmp_path, scan=b"ply\nformat binary_little_endian 1.0\nelement vertex 9\n"), 10_000)
    with pytest.raises(InvalidInput, match="exceed the limit of 100"):
        decode_request(_v2(tmp_path, scan=scan_bytes(tmp_path)), max_points=100)
    numbers = InferRequest("coherency", [InferInput("scan", [1], "FP32", data=[1.0])])
    with pytest.raises(InvalidInput, match="must be BYTES"):
        decode_request(numbers, 10_000)
    two = InferRequest("coherency", [InferInput("scan", [2], "BYTES", data=["ply", "ply"])])
    with pytest.raises(InvalidInput, match="one element"):
        v2_fields(two)
    number = InferRequest("coherency", [InferInput("scan", [1], "BYTES", data=[10**12])])
    with pytest.raises(InvalidInput, match="bytes or a string"):  # not bytes(10**12): a terabyte of zeros
        v2_fields(number)
    misshapen = InferRequest("coherency", [InferInput("scan", [3, 7], "BYTES", data=["ply"])])
    with pytest.raises(InvalidInput, match="malformed"):
        v2_fields(misshapen)


@pytest.mark.parametrize(("body", "message"), [
    ({"instances": []}, "one scan per request"),
    ({"instances": [{}, {}]}, "one scan per request"),
    ({"inputs": []}, "one scan per request"),
    ({"instances": [{"scan": "cGx5"}]}, "must be {\"b64\""),
    ({"instances": [{"scan": {"b64": "%%%"}}]}, "not valid base64"),
    ({"instances": [{"scan": {"b64": "cGx5"}, "scan_format": 3}]}, "scan_format must be a string"),
    ({"instances": [{"scan": {"b64": "cGx5"}, "extra": 1}]}, "unknown field"),
])
def test_bad_v1_requests_say_what_is_wrong(body, message):
    with pytest.raises(InvalidInput, match=message):
        decode_request(body, 10_000)


def test_a_body_that_is_not_json_is_an_unsupported_media_type():
    with pytest.raises(UnsupportedMediaType, match="Content-Type: application/json"):
        decode_request(b"scan bytes", 10_000)


def test_binary_bodies_whose_lengths_do_not_add_up_are_refused(tmp_path):
    body, length = v2_body(scan_bytes(tmp_path))
    header = orjson.loads(body[:length])
    size = header["inputs"][0]["parameters"]["binary_data_size"]
    cases = [(body, len(body) + 1, "does not fit"), (body, 0, "does not fit"), (body[:-1], length, "binary_data_size"),
             (body + b"x", length, "1 bytes follow"), (b"}" + body[1:], length, "not valid JSON"),
             (orjson.dumps({"inputs": {}}), None, "'inputs' list")]
    for shape, datatype in (([2], "BYTES"), ([-1], "BYTES"), ([size], "FP32"), ([1], "COMPLEX")):
        bad = orjson.dumps({"inputs": [{**header["inputs"][0], "shape": shape, "datatype": datatype}]})
        cases.append((bad + body[length:], len(bad), "shape|whole number|datatype|values but"))
    for data, json_length, message in cases:
        with pytest.raises(InvalidInput, match=message):
            infer_request_from_bytes(data, json_length, "coherency")


def test_binary_tensors_stay_binary_and_non_utf8_bytes_survive(tmp_path):
    data = scan_bytes(tmp_path)  # binary PLY: not UTF-8 text, which kserve's own decoder refuses
    request = infer_request_from_bytes(*v2_body(data), "coherency")
    assert request.inputs[0].as_numpy()[0] == data


def test_the_predictor_tensors_round_trip(tmp_path):
    sent = decode_v2(*v2_body(scan_bytes(tmp_path), photo_bytes(), camera_dict(), {"body_site": "heel"}))
    sent.history = {"wound_id": "W-1", "age": np.float32(71.0).item(), "diabetes": True}
    body, length = to_predictor(sent, "coherency").to_rest()
    got = from_transformer(infer_request_from_bytes(body, length, "coherency"), 10_000)
    np.testing.assert_array_equal(got.scan.points, sent.scan.points)
    np.testing.assert_array_equal(got.scan.colors, sent.scan.colors)
    np.testing.assert_array_equal(got.photo, sent.photo)
    assert got.camera.to_dict() == sent.camera.to_dict()
    assert (got.metadata, got.history) == (sent.metadata, sent.history)
    as_v1 = {"instances": [{"points": sent.scan.points.tolist(), "camera": sent.camera.to_dict()}]}
    np.testing.assert_array_equal(from_transformer(as_v1, 10_000).scan.points, sent.scan.points)


@pytest.mark.parametrize(("instance", "message"), [
    ({}, "no 'points'"),
    ({"points": [[0.0, 0.0]]}, r"\(N, 3\) array"),
    ({"points": [[0.0, 0.0, float("nan")]]}, "NaN or infinite"),
    ({"points": [[0.0, 0.0, 0.0]], "colors": [[0, 0, 0], [1, 1, 1]]}, "2 rows for 1 points"),
    ({"points": [[0.0, 0.0, 0.0]], "colors": [[0, 0, 300]]}, "outside 0..255"),
    ({"points": [[0.0, 0.0, 0.0]], "photo": np.zeros((2, 2, 3)).tolist()}, "photo needs its camera"),
    ({"points": [[0.0, 0.0, 0.0]], "history": [1]}, "'history' must be a JSON object"),
    ({"points": [[0.0, 0.0, 0.0]], "normals": [[0, 0, 1]]}, "unknown input"),
])
def test_the_predictor_refuses_bad_tensors(instance, message):
    with pytest.raises(InvalidInput, match=message):
        from_transformer({"instances": [instance]}, 10_000)
