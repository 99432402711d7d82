"""The scan upload: a multipart body read no further than the size limit, its files told apart by their bytes.

Fields: scan (file, PLY or PCD), photo (file, JPEG or PNG, optional), camera (JSON as a field or a file, needed
with a photo), metadata (JSON, optional; see schemas.ScanMetadata). The body is counted as it arrives, so an
oversized upload is refused after max_upload_bytes, not after it has filled a disk.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData, UploadFile
from starlette.types import Message, Receive

from platform_api.assessments.schemas import Camera, ScanMetadata
from platform_api.deps import SettingsDep
from platform_api.errors import Invalid, TooLarge, UnsupportedMedia

FIELDS = ("scan", "photo", "camera", "metadata")
SCAN_MAGIC = {b"ply\n": "ply", b"ply\r\n": "ply", b"# .PCD": "pcd", b"VERSION": "pcd"}
PHOTO_MAGIC = {b"\xff\xd8\xff": "jpeg", b"\x89PNG\r\n\x1a\n": "png"}
M = TypeVar("M", bound=BaseModel)
# the multipart form description for the OpenAPI page (the body is parsed by read_upload, not by FastAPI)
OPENAPI_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["scan"], "properties": {
        "scan": {"type": "string", "format": "binary", "description": "PLY or PCD scan, metres"},
        "photo": {"type": "string", "format": "binary", "description": "JPEG or PNG photo (needs camera)"},
        "camera": {"type": "string", "description": "camera JSON (docs/scan-format.md), a field or a file"},
        "metadata": {"type": "string", "description": 'JSON: {"captured_at", "device", "body_site", "exudate"}'},
    }}}}}}


@dataclass(frozen=True)
class ScanUpload:
    """One validated upload."""

    scan: bytes
    scan_format: str  # ply or pcd
    photo: bytes | None
    camera: dict | None
    metadata: ScanMetadata


def scan_format(data: bytes) -> str:
    """ply or pcd, from the first bytes; UnsupportedMedia for anything else."""
    for magic, kind in SCAN_MAGIC.items():
        if data.startswith(magic):
            return kind
    raise UnsupportedMedia("the scan must be a PLY (starting 'ply') or PCD (starting '# .PCD' or 'VERSION') file")


def photo_format(data: bytes) -> str:
    """jpeg or png, from the first bytes; UnsupportedMedia for anything else."""
    for magic, kind in PHOTO_MAGIC.items():
        if data.startswith(magic):
            return kind
    raise UnsupportedMedia("the photo must be a JPEG or PNG file")


async def read_upload(request: Request, settings: SettingsDep) -> ScanUpload:
    """The request's multipart form, at most settings.max_upload_bytes long (413 beyond), validated."""
    limit = settings.max_upload_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge(_too_large(limit))
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise UnsupportedMedia("send the scan as multipart/form-data with a file field 'scan'")
    form = await Request(request.scope, _counted(request.receive, limit)).form(max_files=4, max_fields=4)
    try:
        return await _validated(form)
    finally:
        await form.close()


UploadDep = Annotated[ScanUpload, Depends(read_upload)]


def _too_large(limit: int) -> str:
    return f"the upload is larger than the {limit / 2**20:.3g} MB limit; send a smaller (decimated) scan or photo"


def _counted(receive: Receive, limit: int) -> Receive:
    """`receive` that refuses the body once more than `limit` bytes arrived (a missing or false Content-Length)."""
    seen = 0

    async def counted() -> Message:
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            raise TooLarge(_too_large(limit))
        return message

    return counted


async def _validated(form: FormData) -> ScanUpload:
    unknown = sorted(set(form.keys()) - set(FIELDS))
    if unknown:
        raise Invalid(f"unknown form field(s) {', '.join(unknown)}; send {', '.join(FIELDS)}")
    scan = form.get("scan")
    if not isinstance(scan, UploadFile):
        raise Invalid("send the scan as a file in the form field 'scan'")
    data = await scan.read()
    photo = await _file(form, "photo")
    if photo is not None:
        photo_format(photo)
    camera = await _json_model(form, "camera", Camera)
    metadata = await _json_model(form, "metadata", ScanMetadata) or ScanMetadata()
    if photo is not None and camera is None:
        raise Invalid("a photo needs its camera (intrinsics and world_to_camera); send 'camera' or leave the "
                      "photo out")
    if photo is not None:
        _check_photo_size(photo, camera)
    return ScanUpload(data, scan_format(data), photo, None if camera is None else camera.model_dump(), metadata)


async def _file(form: FormData, name: str) -> bytes | None:
    value = form.get(name)
    if value is None:
        return None
    if not isinstance(value, UploadFile):
        raise Invalid(f"send the {name} as a file in the form field '{name}'")
    return await value.read()


async def _json_model(form: FormData, name: str, model: type[M]) -> M | None:
    """A JSON object sent as a form field or a file, validated by `model`."""
    value = form.get(name)
    if value is None:
        return None
    raw = await value.read() if isinstance(value, UploadFile) else value.encode()
    try:
        return model.model_validate(json.loads(raw))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise Invalid(f"{name} is not valid JSON") from e
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise Invalid(f"{name}{'.' + where if where else ''}: {first['msg']}") from e


def _check_photo_size(photo: bytes, camera: Camera) -> None:
    """The photo must be readable and as large as its camera's image (only the header is decoded)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(photo)) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise Invalid("the photo is not a readable JPEG or PNG") from e
    if (width, height) != (camera.width, camera.height):
        raise Invalid(f"the photo is {width}x{height} pixels but its camera describes {camera.width}x{camera.height}")
