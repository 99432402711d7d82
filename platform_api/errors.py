"""Domain errors, raised by services, and the one place they become HTTP answers.

Every 4xx and 5xx the API sends has one shape: {"error": "what is wrong", "code": "machine_readable_slug"}, except
under a path prefix whose clients expect another (install's `shapes`: /fhir answers FHIR OperationOutcomes).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)
# (status, message, code, headers) -> the answer, for the routes under one path prefix
ErrorShape = Callable[[int, str, str, Mapping[str, str] | None], Response]


class DomainError(Exception):
    """An error a client can act on; the subclass sets the status and code."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers


class Invalid(DomainError):
    status, code = 422, "invalid"


class Unauthorized(DomainError):
    status, code = 401, "unauthorized"

    def __init__(self, message: str = "sign in first: send 'Authorization: Bearer <token>'") -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(DomainError):
    status, code = 403, "forbidden"


class NotFound(DomainError):
    """Also what a caller gets for a record it may not see, so ids reveal nothing."""

    status, code = 404, "not_found"


class Conflict(DomainError):
    status, code = 409, "conflict"


class TooLarge(DomainError):
    status, code = 413, "too_large"


class UnsupportedMedia(DomainError):
    status, code = 415, "unsupported_media_type"


class RateLimited(DomainError):
    status, code = 429, "rate_limited"


class Upstream(DomainError):
    """A service the API depends on (the assessment service, a payment provider) failed or refused."""

    status, code = 502, "upstream_error"


def error_body(message: str, code: str) -> dict[str, str]:
    return {"error": message, "code": code}


def answer(request: Request, status: int, message: str, code: str,
           headers: Mapping[str, str] | None = None) -> Response:
    """The error in the shape the request's path calls for (the one JSON shape unless a prefix has its own)."""
    path = request.url.path.removeprefix(request.scope.get("root_path", ""))
    for prefix, shape in getattr(request.app.state, "error_shapes", {}).items():
        if path == prefix or path.startswith(prefix + "/"):
            return shape(status, message, code, headers)
    return JSONResponse(error_body(message, code), status_code=status, headers=headers)


def _domain(request: Request, exc: DomainError) -> Response:
    return answer(request, exc.status, exc.message, exc.code, exc.headers)


def _http(request: Request, exc: StarletteHTTPException) -> Response:
    code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}.get(exc.status_code, "http_error")
    return answer(request, exc.status_code, str(exc.detail), code, getattr(exc, "headers", None))


def _validation(request: Request, exc: RequestValidationError) -> Response:
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
    return answer(request, 422, f"{where}: {first['msg']}" if where else first["msg"], "invalid")


def _unstorable(request: Request, exc: Exception) -> Response:
    # PostgreSQL refuses NUL characters in text and numbers past its column types; SQLite past 64-bit integers
    return answer(request, 422, "a value in the request cannot be stored: text with NUL characters or a number "
                  "out of range", "invalid")


def _unexpected(request: Request, exc: Exception) -> Response:
    # the cause goes to the log as its type and stack only (messages can hold patient data), never to the client
    stack = "".join(traceback.format_tb(exc.__traceback__))
    log.error("unhandled %s at\n%s", type(exc).__name__, stack)
    return answer(request, 500, "internal error", "internal")


def install(app: FastAPI, shapes: Mapping[str, ErrorShape] | None = None) -> None:
    """Map every error the app can raise to the one JSON shape, or to the shape of its path prefix in `shapes`."""
    app.state.error_shapes = dict(shapes or {})
    app.add_exception_handler(DomainError, _domain)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(DataError, _unstorable)
    app.add_exception_handler(OverflowError, _unstorable)
    app.add_exception_handler(Exception, _unexpected)
