"""A client of the running service: one scan, with its photo, camera and metadata, as a V2 binary request.

The files go as BYTES tensors appended after the JSON header (Open Inference Protocol binary extension), so a
scan is sent as the bytes of its file, never as JSON numbers. `coherency assess` and the benchmarks use it.
"""

from __future__ import annotations

import json

import httpx
import numpy as np
from kserve import InferInput, InferRequest, InferResponse
from kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER

from serving.wire import assessment_of


class ServiceError(RuntimeError):
    """The service answered with an error (status and its {"error": ...} message) or could not be reached."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def request_body(model_name: str, scan: bytes, photo: bytes | None = None, camera: dict | None = None,
                 metadata: dict | None = None, scan_format: str | None = None) -> tuple[bytes, dict[str, str]]:
    """The body and headers of a binary V2 request carrying these inputs."""
    values = {"scan": scan, "scan_format": None if scan_format is None else scan_format.encode(), "photo": photo,
              "camera": None if camera is None else json.dumps(camera).encode(),
              "metadata": None if metadata is None else json.dumps(metadata).encode()}
    inputs = []
    for name, value in values.items():
        if value is not None:
            tensor = InferInput(name, [1], "BYTES")
            tensor.set_data_from_numpy(np.array([value], dtype=object), binary_data=True)
            inputs.append(tensor)
    body, json_length = InferRequest(model_name=model_name, infer_inputs=inputs).to_rest()
    return body, {"content-type": "application/octet-stream", INFERENCE_CONTENT_LENGTH_HEADER: str(json_length)}


def assess_remote(url: str, model_name: str, scan: bytes, photo: bytes | None = None, camera: dict | None = None,
                  metadata: dict | None = None, timeout: float = 600.0) -> dict:
    """The service's assessment of one scan; ServiceError when it refuses the scan or cannot be reached."""
    body, headers = request_body(model_name, scan, photo, camera, metadata)
    endpoint = f"{url.rstrip('/')}/v2/models/{model_name}/infer"
    try:
        response = httpx.post(endpoint, content=body, headers=headers, timeout=timeout)
    except httpx.TransportError as e:
        raise ServiceError(f"no answer from {url} ({type(e).__name__}); start the service with 'coherency serve' "
                           "or assess with --in-process") from e
    if not response.is_success:
        raise ServiceError(_error_message(response), response.status_code)
    json_length = int(response.headers.get(INFERENCE_CONTENT_LENGTH_HEADER, len(response.content)))
    return assessment_of(InferResponse.from_bytes(response.content, json_length))


def _error_message(response: httpx.Response) -> str:
    try:
        return f"{response.status_code}: {response.json()['error']}"
    except (ValueError, KeyError, TypeError):
        return f"{response.status_code}: {response.text[:300]}"
