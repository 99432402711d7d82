"""kserve's ModelServer as both coherency processes run it, adjusted through its own extension points.

- One JSON error shape: kserve answers its own errors with {"error": "..."}, but FastAPI's 404/405/413 and
  request-validation errors would say {"detail": ...}; handlers on kserve's FastAPI app give them kserve's shape.
- A body-size limit (serving.max_body_mb): a middleware refusing a larger body with a 413 as soon as its declared
  length or the bytes received pass it. (FastAPI's own `max_body_size` answers a too-long Content-Length in
  plain text, outside the exception handlers.)
- Binary V2 tensors stay binary: a DataPlane whose decoder is serving.payload.infer_request_from_bytes.
- `coherency_stage_seconds{server, stage}`: the per-stage latency histogram on each server's /metrics.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from http import HTTPStatus

import httpx
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kserve import Model, ModelServer, PredictorConfig
from kserve import model_server as kserve_server
from kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER
from kserve.errors import InvalidInput
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.infer_type import InferRequest
from prometheus_client import Histogram
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.payload import UnsupportedMediaType
from serving.wire import infer_request_from_bytes

STAGE_SECONDS = Histogram("coherency_stage_seconds", "Wall time of one stage of an assessment",
                          ["server", "stage"],
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0))
JSON_TYPES = ("application/json", "application/cloudevents+json")


def observe_stages(server: str, stage_ms: Mapping[str, float]) -> None:
    """Record one request's stage times (milliseconds, as features.stopwatch.Stopwatch keeps them)."""
    for stage, ms in stage_ms.items():
        STAGE_SECONDS.labels(server=server, stage=stage).observe(ms / 1e3)


def argument_parser(description: str) -> argparse.ArgumentParser:
    """kserve's flags (--model_name, --http_port, --enable_grpc, --predictor_host, ...) plus ours."""
    parser = argparse.ArgumentParser(description=description, parents=[kserve_server.parser])
    parser.add_argument("--profile", default="demo", help="params.yaml profile whose serving section applies")
    parser.add_argument("--params", default="params.yaml", help="the params.yaml to read")
    return parser


def serve(model: Model, args: argparse.Namespace, max_body_bytes: int, fatal: tuple[type[Exception], ...] = ()) -> None:
    """Load the model, then serve it until SIGTERM or SIGINT; a `fatal` load error exits 2 with one line.

    The server is made first: it puts the predictor's address (a transformer's) where load() can read it.
    """
    if args.workers != 1:  # kserve's worker processes import a fresh app, without this module's handlers and limit
        raise SystemExit("error: --workers must be 1; run more replicas (or servers) to serve more requests")
    server = model_server(max_body_bytes, args)
    try:
        model.load()
    except fatal as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from e
    server.start([model])


def model_server(max_body_bytes: int, args: argparse.Namespace) -> ModelServer:
    """A ModelServer on the parsed flags, with our data plane and error handling."""
    config = PredictorConfig(args.predictor_host, args.predictor_protocol, args.predictor_use_ssl,
                             args.predictor_request_timeout_seconds, args.predictor_request_retries,
                             args.enable_predictor_health_check)
    server = ModelServer(http_port=args.http_port, grpc_port=args.grpc_port, workers=args.workers,
                         enable_grpc=args.enable_grpc, enable_latency_logging=args.enable_latency_logging,
                         predictor_config=config)
    server.dataplane = BinaryDataPlane(model_registry=server.registered_models)
    configure_app(kserve_server.app, max_body_bytes)
    return server


class BinaryDataPlane(DataPlane):
    """kserve's DataPlane, decoding V2 bodies with serving.payload (binary tensors kept as bytes)."""

    async def ready(self) -> bool:
        """Not ready (503) while the predictor a transformer checks does not answer; kserve's own gives a 500."""
        try:
            return await super().ready()
        except httpx.HTTPError:
            return False

    def decode_inference_request(self, body, headers, model_name: str) -> InferRequest:
        if not isinstance(body, bytes):  # FastAPI parsed a JSON body into kserve's pydantic model
            return super().decode_inference_request(body, headers, model_name)
        length = headers.get(INFERENCE_CONTENT_LENGTH_HEADER)
        if length is None:
            kind = headers.get("content-type", "").split(";")[0].strip().lower()
            if kind and kind not in JSON_TYPES:
                raise UnsupportedMediaType(f"content type {kind!r} is neither JSON nor a binary request with an "
                                           f"{INFERENCE_CONTENT_LENGTH_HEADER} header")
            return infer_request_from_bytes(body, None, model_name)
        try:
            json_length = int(length)
        except ValueError as e:
            raise InvalidInput(f"{INFERENCE_CONTENT_LENGTH_HEADER} must be an integer, got {length!r}") from e
        return infer_request_from_bytes(body, json_length, model_name)


def configure_app(app: FastAPI, max_body_bytes: int) -> None:
    """The body limit and the handlers that give every error kserve's {"error": "..."} shape."""
    app.add_middleware(BodyLimit, max_body_bytes=max_body_bytes)
    limit_mb = max_body_bytes / 2**20

    async def http_error(_, exc: HTTPException) -> JSONResponse:
        message = exc.detail
        if exc.status_code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE:
            message = f"the request body is larger than the {limit_mb:g} MB limit (serving.max_body_mb)"
        return JSONResponse({"error": str(message)}, status_code=exc.status_code, headers=exc.headers)

    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(UnsupportedMediaType, _unsupported_media_type)


class BodyLimit:
    """ASGI middleware: reading more than max_body_bytes of a request body raises a 413 HTTPException."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app, self.max_body_bytes = app, max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        too_long = declared.isdigit() and int(declared) > self.max_body_bytes
        received = 0

        async def limited() -> Message:
            nonlocal received
            if too_long:  # refused before a byte of it is read
                raise HTTPException(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body_bytes:
                raise HTTPException(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
            return message

        await self.app(scope, limited, send)


async def _validation_error(_, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(part) for part in first.get("loc", ()))
    return JSONResponse({"error": f"invalid request body at {where or 'the top'}: {first.get('msg', exc)}"},
                        status_code=HTTPStatus.BAD_REQUEST)


async def _unsupported_media_type(_, exc: UnsupportedMediaType) -> JSONResponse:
    return JSONResponse({"error": str(exc)}, status_code=HTTPStatus.UNSUPPORTED_MEDIA_TYPE)
