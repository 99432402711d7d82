"""Request bodies for the serving tests: a small scan, a photo with its camera, as V1 and V2 (binary) bodies."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from features.io import Camera, write_pcd, write_ply
from serving.client import request_body
from tests.conftest import bowl_scan

PHOTO_SIZE = (40, 30)  # width, height


def scan_bytes(tmp_path, kind: str = "ply", seed: int = 3, spacing: float = 1.5e-3, **ply) -> bytes:
    """A small bowl scan (about 1,600 points at the default spacing) as the bytes of a PLY or PCD file."""
    scan = bowl_scan(seed=seed, spacing=spacing)
    path = tmp_path / f"scan-{seed}-{spacing}.{kind}"
    if kind == "ply":
        write_ply(path, scan, **ply)
    else:
        write_pcd(path, scan)
    return path.read_bytes()


def camera_dict(width: int = PHOTO_SIZE[0], height: int = PHOTO_SIZE[1]) -> dict:
    """A camera 60 cm from the origin along z: the test scans, within 30 cm of the origin, lie in front of it."""
    pose = np.eye(4)
    pose[2, 3] = 0.6
    return Camera(width, height, 60.0, 60.0, width / 2, height / 2, pose).to_dict()


def photo_bytes(width: int = PHOTO_SIZE[0], height: int = PHOTO_SIZE[1], kind: str = "PNG") -> bytes:
    pixels = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format=kind)
    return out.getvalue()


def v1_body(scan: bytes, photo: bytes | None = None, camera: dict | None = None,
            metadata: dict | None = None) -> dict:
    instance = {"scan": {"b64": base64.b64encode(scan).decode()}}
    if photo is not None:
        instance["photo"] = {"b64": base64.b64encode(photo).decode()}
    if camera is not None:
        instance["camera"] = camera
    if metadata is not None:
        instance["metadata"] = metadata
    return {"instances": [instance]}


def v2_body(scan: bytes, photo: bytes | None = None, camera: dict | None = None, metadata: dict | None = None,
            model_name: str = "coherency") -> tuple[bytes, int]:
    """A binary V2 body and its JSON header's length (the Inference-Header-Content-Length)."""
    body, headers = request_body(model_name, scan, photo, camera, metadata)
    return body, int(headers["inference-header-content-length"])
