"""Open Inference Protocol bodies between the processes: binary V2 framing, the predictor's tensors, the reply.

Both servers decode binary V2 bodies with `infer_request_from_bytes` (serving.server installs it), which keeps
tensors binary. The transformer -> predictor request is the decoded, validated scan as V2 binary tensors:
`points` FP64 (N, 3) metres, `colors` UINT8 (N, 3), `photo` UINT8 (H, W, 3), and `camera`, `metadata`,
`history` as BYTES [1] JSON. Binary tensors cost one copy each way; a 500k-point scan as JSON numbers would be
tens of megabytes of text to print and parse. The predictor also takes the same fields as a V1 instance of
nested lists, for a client that talks to it directly. It validates again: it may be called without the
transformer in front.
"""

from __future__ import annotations

import json
import math
import struct
import uuid

import numpy as np
import orjson
from kserve import InferInput, InferOutput, InferRequest, InferResponse
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import RequestedOutput, deserialize_bytes_tensor
from kserve.utils.numpy_codec import from_np_dtype, to_np_dtype

from features.io import DEFAULT_MAX_POINTS, Scan, ScanError, validate_scan
from serving.payload import AssessmentRequest, UnsupportedMediaType, check_photo, parse_camera, tensor_values

ARRAYS = {"points": (np.float64, "N, 3"), "colors": (np.uint8, "N, 3"), "photo": (np.uint8, "H, W, 3")}
OBJECTS = ("camera", "metadata", "history")
OUTPUT = "assessment"
# the V2 model metadata (/v2/models/NAME): what the predictor takes and what both servers answer
INPUT_TYPES = [{"name": "points", "datatype": "FP64", "shape": [-1, 3]},
               {"name": "colors", "datatype": "UINT8", "shape": [-1, 3]},
               {"name": "photo", "datatype": "UINT8", "shape": [-1, -1, 3]},
               *({"name": name, "datatype": "BYTES", "shape": [1]} for name in OBJECTS)]
OUTPUT_TYPES = [{"name": OUTPUT, "datatype": "BYTES", "shape": [1]}]


def to_predictor(request: AssessmentRequest, model_name: str, request_id: str | None = None) -> InferRequest:
    """The request as binary V2 tensors for the predictor."""
    arrays = {"points": request.scan.points.astype(np.float64, copy=False), "colors": request.scan.colors,
              "photo": request.photo}
    objects = {"camera": None if request.camera is None else request.camera.to_dict(),
               "metadata": request.metadata or None, "history": request.history}
    inputs = [_binary(name, np.ascontiguousarray(value)) for name, value in arrays.items() if value is not None]
    inputs += [_binary(name, np.array([json.dumps(value, default=str).encode()], dtype=object))
               for name, value in objects.items() if value is not None]
    return InferRequest(model_name=model_name, infer_inputs=inputs, request_id=request_id)


def _binary(name: str, array: np.ndarray) -> InferInput:
    tensor = InferInput(name, list(array.shape), from_np_dtype(array.dtype))
    tensor.set_data_from_numpy(array, binary_data=True)
    return tensor


def from_transformer(payload: InferRequest | dict | bytes, max_points: int = DEFAULT_MAX_POINTS) -> AssessmentRequest:
    """The predictor's input (V2 tensors or one V1 instance) as a validated request; InvalidInput otherwise."""
    fields = _v2_fields(payload) if isinstance(payload, InferRequest) else _v1_fields(payload)
    unknown = sorted(set(fields) - set(ARRAYS) - set(OBJECTS))
    if unknown:
        raise InvalidInput(f"unknown input(s) {', '.join(unknown)}; the predictor takes "
                           f"{', '.join([*ARRAYS, *OBJECTS])}")
    if fields.get("points") is None:
        raise InvalidInput("the request has no 'points' (N, 3)")
    arrays = {name: _array(name, fields.get(name)) for name in ARRAYS}
    objects = {name: _object(name, fields.get(name)) for name in OBJECTS}
    scan = Scan(arrays["points"], colors=arrays["colors"])
    if arrays["colors"] is not None and len(arrays["colors"]) != len(scan):
        raise InvalidInput(f"'colors' has {len(arrays['colors'])} rows for {len(scan)} points")
    try:
        validate_scan(scan, "the scan", max_points)
    except ScanError as e:
        raise InvalidInput(str(e)) from e
    camera = None if objects["camera"] is None else parse_camera(objects["camera"])
    check_photo(arrays["photo"], camera)
    return AssessmentRequest(scan, arrays["photo"], camera, objects["metadata"] or {}, objects["history"])


def _v2_fields(request: InferRequest) -> dict:
    fields = {}
    for tensor in request.inputs:
        values = tensor_values(tensor)
        if tensor.name in OBJECTS:
            if values.size != 1 or not isinstance(values.ravel()[0], bytes | str):
                raise InvalidInput(f"input '{tensor.name}' must be one BYTES element of JSON")
            values = _parse_json(tensor.name, values.ravel()[0])
        fields[tensor.name] = values
    return fields


def _v1_fields(body: object) -> dict:
    if not isinstance(body, dict):
        raise UnsupportedMediaType("send the request as JSON or as a V2 binary request")
    instances = body.get("instances")
    if not isinstance(instances, list) or len(instances) != 1 or not isinstance(instances[0], dict):
        raise InvalidInput('send one scan per request: {"instances": [{"points": [[x, y, z], ...], ...}]}')
    return dict(instances[0])


def _parse_json(name: str, value: bytes | str) -> object:
    try:
        return json.loads(value)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise InvalidInput(f"'{name}' is not valid JSON ({str(e)[:120]})") from e


def _array(name: str, value: object) -> np.ndarray | None:
    """A numeric input with the dtype and shape ARRAYS gives it (None when absent)."""
    if value is None:
        return None
    dtype, shape = ARRAYS[name]
    try:
        array = np.asarray(value)
        if array.dtype.kind not in "fiub" or array.ndim != shape.count(",") + 1 or array.shape[-1] != 3:
            raise ValueError(f"got {array.dtype} {array.shape}")
        if dtype == np.uint8 and (array.min(initial=0) < 0 or array.max(initial=0) > 255):
            raise ValueError("values outside 0..255")
        return array.astype(dtype, copy=False)
    except (ValueError, TypeError) as e:
        raise InvalidInput(f"'{name}' must be a ({shape}) array of numbers ({e})") from e


def _object(name: str, value: object) -> dict | None:
    if value is not None and not isinstance(value, dict):
        raise InvalidInput(f"'{name}' must be a JSON object, got {type(value).__name__}")
    return value


def respond(payload: InferRequest | dict, result: dict, model_name: str) -> InferResponse | dict:
    """One BYTES output of JSON for a V2 request, {"predictions": [result]} for a V1 one."""
    if not isinstance(payload, InferRequest):
        return {"predictions": [result]}
    output = InferOutput(OUTPUT, [1], "BYTES")
    output.set_data_from_numpy(np.array([json.dumps(result, allow_nan=False).encode()], dtype=object),
                               binary_data=payload.use_binary_outputs)
    return InferResponse(response_id=payload.id or str(uuid.uuid4()), model_name=model_name, infer_outputs=[output],
                         use_binary_outputs=payload.use_binary_outputs)


def assessment_of(response: InferResponse) -> dict:
    """The assessment in a V2 response from the predictor (or the transformer)."""
    output = response.get_output_by_name(OUTPUT)
    if output is None:
        raise InvalidInput(f"the response has no '{OUTPUT}' output")
    value = output.as_numpy().ravel()[0]
    return json.loads(value)


# ---------------------------------------------------------------------------------------------- binary V2 framing


def infer_request_from_bytes(body: bytes, json_length: int | None, model_name: str) -> InferRequest:
    """A V2 REST body (JSON header, then the binary tensors) as an InferRequest whose tensors stay binary.

    kserve 0.21's InferRequest.from_bytes turns every binary tensor into a Python list (seconds for a large
    scan) and fails with a 500 on BYTES that are not UTF-8 text, such as a binary PLY. json_length: the
    Inference-Header-Content-Length header; None reads the whole body as JSON (what tritonclient sends
    with binary_data=False and no content type).
    """
    n = len(body) if json_length is None else json_length
    if not 0 < n <= len(body):
        raise InvalidInput(f"Inference-Header-Content-Length {n} does not fit a body of {len(body)} bytes")
    try:
        header = orjson.loads(body[:n])
    except orjson.JSONDecodeError as e:
        raise InvalidInput(f"the request's JSON header is not valid JSON: {e}") from e
    if not isinstance(header, dict) or not isinstance(header.get("inputs"), list):
        raise InvalidInput("a V2 request is a JSON object with an 'inputs' list")
    inputs, offset = [], n
    for item in header["inputs"]:
        tensor, offset = _binary_tensor(item, body, offset)
        inputs.append(tensor)
    if offset != len(body):
        raise InvalidInput(f"{len(body) - offset} bytes follow the last binary tensor; check binary_data_size")
    request_id, parameters = header.get("id"), header.get("parameters")
    return InferRequest(model_name=model_name, infer_inputs=inputs,
                        request_id=request_id if isinstance(request_id, str) else None,
                        parameters=parameters if isinstance(parameters, dict) else None,
                        request_outputs=_requested_outputs(header.get("outputs")))


def _binary_tensor(item: object, body: bytes, offset: int) -> tuple[InferInput, int]:
    """One input of the JSON header with its data (inline, or the next binary_data_size bytes of the body)."""
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise InvalidInput("every input needs a 'name', a 'datatype' and a 'shape'")
    name, datatype, shape = item["name"], item.get("datatype"), item.get("shape")
    if not isinstance(datatype, str) or to_np_dtype(datatype.upper()) is None:
        raise InvalidInput(f"input '{name}' has an unknown datatype {datatype!r}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in shape):
        raise InvalidInput(f"input '{name}' needs a shape: a list of non-negative integers")
    parameters = item.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise InvalidInput(f"input '{name}' has parameters that are not an object")
    tensor = InferInput(name, shape, datatype, parameters=dict(parameters))
    if "data" in item:
        tensor.data = item["data"]
        return tensor, offset
    size = parameters.get("binary_data_size")
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= len(body) - offset:
        raise InvalidInput(f"input '{name}' has no 'data' and no binary_data_size within the body")
    tensor.set_data_from_numpy(_raw_array(name, body[offset:offset + size], tensor.datatype, shape))
    return tensor, offset + size


def _raw_array(name: str, raw: bytes, datatype: str, shape: list[int]) -> np.ndarray:
    if datatype == "BYTES":
        try:
            array = deserialize_bytes_tensor(raw)
        except struct.error as e:
            raise InvalidInput(f"input '{name}': BYTES elements need a 4-byte length before each one") from e
    else:
        dtype = np.dtype(to_np_dtype(datatype))
        if len(raw) % dtype.itemsize:
            raise InvalidInput(f"input '{name}': {len(raw)} bytes is not a whole number of {datatype} values")
        array = np.frombuffer(raw, dtype=dtype)
    if array.size != math.prod(shape):
        raise InvalidInput(f"input '{name}' has {array.size} values but its shape {shape} needs {math.prod(shape)}")
    return array.reshape(shape)


def _requested_outputs(outputs: object) -> list[RequestedOutput] | None:
    if not isinstance(outputs, list):
        return None
    named = [o for o in outputs if isinstance(o, dict) and isinstance(o.get("name"), str)]
    return [RequestedOutput(o["name"], o["parameters"] if isinstance(o.get("parameters"), dict) else None)
            for o in named] or None
