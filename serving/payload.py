"""What a client sends, decoded and validated: pure functions from request bodies to an `AssessmentRequest`.

Two forms reach the transformer:
- V2 (Open Inference Protocol): BYTES inputs `scan` (required), `scan_format` ("ply" | "pcd", default from the
  content), `photo` (JPEG or PNG), `camera` and `metadata` (JSON), as binary tensors or JSON strings;
- V1: {"instances": [{"scan": {"b64": ...}, "scan_format": "ply", "photo": {"b64": ...}, "camera": {...},
  "metadata": {...}}]}, one instance per request.
Every refusal is kserve's InvalidInput (a 400 with {"error": ...}) saying what is wrong; nothing here touches
the network or torch, so the decoder can be fuzzed on its own.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import os
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from kserve import InferInput, InferRequest
from kserve.errors import InferenceError, InvalidInput

from features.io import DEFAULT_MAX_POINTS, Camera, Scan, ScanError, camera_from_dict, read_scan

SCAN_FORMATS = ("ply", "pcd")
CLIENT_INPUTS = ("scan", "scan_format", "photo", "camera", "metadata")
MAX_PHOTO_PIXELS = 40_000_000  # a 40 MP photo; larger ones are refused before their pixels are decoded
_TENSOR_ERRORS = (ValueError, TypeError, struct.error, InferenceError, OverflowError)  # kserve/numpy on bad tensors


class UnsupportedMediaType(InvalidInput):
    """A body that is neither JSON nor an Open Inference Protocol binary request (answered with 415)."""


@dataclass
class AssessmentRequest:
    """One validated scan with what may come with it; `history` is filled by the transformer from Feast."""

    scan: Scan
    photo: np.ndarray | None = None  # (H, W, 3) uint8 RGB, the camera's resolution
    camera: Camera | None = None
    metadata: dict = field(default_factory=dict)
    history: dict | None = None


# ---------------------------------------------------------------------------------------------- client requests


def decode_request(payload: InferRequest | dict | bytes, max_points: int = DEFAULT_MAX_POINTS) -> AssessmentRequest:
    """The client's V2 InferRequest or V1 JSON object as a validated request; InvalidInput when unusable."""
    if isinstance(payload, InferRequest):
        fields = v2_fields(payload)
    elif isinstance(payload, dict):
        fields = v1_fields(payload)
    else:  # kserve hands a V1 body over undecoded when its content type is not JSON
        raise UnsupportedMediaType("send the request as JSON (Content-Type: application/json) or as an Open "
                                   "Inference Protocol binary request (Inference-Header-Content-Length)")
    return assemble(fields, max_points)


def v2_fields(request: InferRequest) -> dict:
    """The V2 inputs by name: bytes for scan and photo, text for scan_format, objects for camera and metadata."""
    unknown = sorted({tensor.name for tensor in request.inputs} - set(CLIENT_INPUTS))
    if unknown:
        raise InvalidInput(f"unknown input(s) {', '.join(map(repr, unknown))}; send {', '.join(CLIENT_INPUTS)}")
    fmt = _bytes_input(request, "scan_format")
    return {"scan": _bytes_input(request, "scan"), "scan_format": None if fmt is None else _text(fmt, "scan_format"),
            "photo": _bytes_input(request, "photo"), "camera": _json_object(_bytes_input(request, "camera"), "camera"),
            "metadata": _json_object(_bytes_input(request, "metadata"), "metadata")}


def v1_fields(body: dict) -> dict:
    """The fields of the one instance of a V1 request, base64 decoded."""
    instances = body.get("instances")
    if not isinstance(instances, list) or len(instances) != 1 or not isinstance(instances[0], dict):
        raise InvalidInput('send one scan per request: {"instances": [{"scan": {"b64": "..."}, ...}]}')
    instance = instances[0]
    unknown = sorted(set(instance) - set(CLIENT_INPUTS))
    if unknown:
        raise InvalidInput(f"unknown field(s) {', '.join(map(repr, unknown))}; send {', '.join(CLIENT_INPUTS)}")
    fmt = instance.get("scan_format")
    if fmt is not None and not isinstance(fmt, str):
        raise InvalidInput("scan_format must be a string: 'ply' or 'pcd'")
    return {"scan": _base64(instance.get("scan"), "scan"), "scan_format": fmt,
            "photo": _base64(instance.get("photo"), "photo"),
            "camera": _object_or_none(instance.get("camera"), "camera"),
            "metadata": _object_or_none(instance.get("metadata"), "metadata")}


def assemble(fields: dict, max_points: int) -> AssessmentRequest:
    """Check the fields together (cheap checks first), then decode the photo and the scan."""
    if fields["scan"] is None:
        raise InvalidInput("the request has no 'scan'; send the PLY or PCD file's bytes as 'scan'")
    if fields["photo"] is not None and fields["camera"] is None:
        raise InvalidInput("a photo needs its camera (intrinsics and world_to_camera) to be fused with the scan; "
                           "send 'camera' with the photo, or leave the photo out")
    camera = None if fields["camera"] is None else parse_camera(fields["camera"])
    photo = None if fields["photo"] is None else decode_photo(fields["photo"])
    check_photo(photo, camera)
    try:
        scan = read_scan_bytes(fields["scan"], scan_format(fields["scan"], fields["scan_format"]), max_points)
    except ScanError as e:
        raise InvalidInput(str(e)) from e
    return AssessmentRequest(scan, photo, camera, fields["metadata"] or {})


def scan_format(data: bytes, declared: str | None) -> str:
    """The declared format, or the one the content starts like (a PLY begins with 'ply', anything else is PCD)."""
    if declared is None:
        return "ply" if data[:3] == b"ply" else "pcd"
    if declared.lower().lstrip(".") not in SCAN_FORMATS:
        raise InvalidInput(f"scan_format {declared!r} is not supported; use {' or '.join(SCAN_FORMATS)}")
    return declared.lower().lstrip(".")


def read_scan_bytes(data: bytes, suffix: str, max_points: int = DEFAULT_MAX_POINTS) -> Scan:
    """A PLY or PCD scan from its bytes (an upload), validated as features.io.read_scan validates files."""
    suffix = suffix.lower() if suffix.startswith(".") else f".{suffix.lower()}"
    if suffix[1:] not in SCAN_FORMATS:
        raise ScanError(f"unsupported scan type {suffix!r}; send a .ply or .pcd file")
    handle, name = tempfile.mkstemp(suffix=suffix)
    try:
        with os.fdopen(handle, "wb") as fh:
            fh.write(data)
        return read_scan(name, max_points)
    except ScanError as e:  # the temporary path means nothing to the sender
        raise ScanError(str(e).replace(name, f"the uploaded {suffix[1:].upper()} scan")) from e
    finally:
        Path(name).unlink(missing_ok=True)


def decode_photo(data: bytes) -> np.ndarray:
    """A JPEG or PNG as an (H, W, 3) uint8 RGB array."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            kind, width, height = image.format, image.width, image.height
            if kind in ("JPEG", "PNG") and width * height <= MAX_PHOTO_PIXELS:
                pixels = np.asarray(image.convert("RGB"))
    except Exception as e:  # Pillow raises many types (OSError, SyntaxError, struct.error, ...) on broken files
        raise InvalidInput(f"the photo is not a readable JPEG or PNG ({type(e).__name__}: {e})"[:300]) from e
    if kind not in ("JPEG", "PNG"):
        raise InvalidInput(f"the photo must be a JPEG or PNG, got {kind}")
    if width * height > MAX_PHOTO_PIXELS:
        raise InvalidInput(f"the photo has {width}x{height} pixels, more than {MAX_PHOTO_PIXELS}; send a smaller one")
    return pixels


def check_photo(photo: np.ndarray | None, camera: Camera | None) -> None:
    """A photo must come with its camera and have the camera's resolution."""
    if photo is None:
        return
    if camera is None:
        raise InvalidInput("a photo needs its camera; send 'camera' with the photo, or leave the photo out")
    if photo.shape[:2] != (camera.height, camera.width):
        raise InvalidInput(f"the photo is {photo.shape[1]}x{photo.shape[0]} pixels but its camera describes "
                           f"{camera.width}x{camera.height}; send the photo at the camera's resolution")


def parse_camera(payload: dict) -> Camera:
    """camera_from_dict with its ScanError as InvalidInput."""
    try:
        return camera_from_dict(payload, "camera")
    except ScanError as e:
        raise InvalidInput(str(e)) from e


# ---------------------------------------------------------------------------------------------- tensors and JSON


def _bytes_input(request: InferRequest, name: str) -> bytes | None:
    """The single element of BYTES input `name` (None when absent)."""
    tensor = request.get_input_by_name(name)
    if tensor is None:
        return None
    if tensor.datatype != "BYTES":
        raise InvalidInput(f"input '{name}' must be BYTES, got {tensor.datatype}")
    values = tensor_values(tensor).ravel()
    if values.size != 1:
        raise InvalidInput(f"input '{name}' must hold one element (shape [1]), got {values.size}")
    value = values[0]
    if not isinstance(value, bytes | str):
        raise InvalidInput(f"input '{name}' must hold bytes or a string, got {type(value).__name__}")
    return value.encode() if isinstance(value, str) else value


def tensor_values(tensor: InferInput) -> np.ndarray:
    """The tensor as numpy, kserve's errors on malformed data (wrong shape, bad BYTES framing) as InvalidInput."""
    try:
        return tensor.as_numpy()
    except InvalidInput:
        raise
    except _TENSOR_ERRORS as e:
        raise InvalidInput(f"input '{tensor.name}' ({tensor.datatype} {tensor.shape}) is malformed: {e}"[:300]) from e


def _text(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidInput(f"input '{name}' must be UTF-8 text") from e


def _json_object(data: bytes | None, name: str) -> dict | None:
    if data is None:
        return None
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise InvalidInput(f"'{name}' is not valid JSON ({str(e)[:120]})") from e
    return _object_or_none(value, name)


def _object_or_none(value: object, name: str) -> dict | None:
    if value is not None and not isinstance(value, dict):
        raise InvalidInput(f"'{name}' must be a JSON object, got {type(value).__name__}")
    return value


def _base64(value: object, name: str) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("b64"), str):
        raise InvalidInput(f"'{name}' must be {{\"b64\": \"<base64 of the file>\"}}")
    try:
        return base64.b64decode(value["b64"], validate=True)
    except (binascii.Error, ValueError) as e:
        raise InvalidInput(f"'{name}' is not valid base64 ({e})") from e
