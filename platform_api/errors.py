"""Domain errors, raised by services, and the one place they become HTTP answers.

Every 4xx and 5xx the API sends has one shape: {"error": "what is wrong", "code": "machine_readable_slug"}.
"""

from __future__ import annotations

import logging
import traceback

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


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


def _domain(_request: Request, exc: DomainError) -> JSONResponse:
    return JSONResponse(error_body(exc.message, exc.code), status_code=exc.status, headers=exc.headers)


def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}.get(exc.status_code, "http_error")
    return JSONResponse(error_body(str(exc.detail), code), status_code=exc.status_code,
                        headers=getattr(exc, "headers", None))


def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
    return JSONResponse(error_body(f"{where}: {first['msg']}" if where else first["msg"], "invalid"), 422)


def _unstorable(_request: Request, exc: Exception) -> JSONResponse:
    # PostgreSQL refuses NUL characters in text and numbers past its column types; SQLite past 64-bit integers
    return JSONResponse(error_body("a value in the request cannot be stored: text with NUL characters or a number "
                                   "out of range", "invalid"), 422)


def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    # the cause goes to the log as its type and stack only (messages can hold patient data), never to the client
    stack = "".join(traceback.format_tb(exc.__traceback__))
    log.error("unhandled %s at\n%s", type(exc).__name__, stack)
    return JSONResponse(error_body("internal error", "internal"), status_code=500)


def install(app: FastAPI) -> None:
    """Map every error the app can raise to the one JSON shape."""
    app.add_exception_handler(DomainError, _domain)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(DataError, _unstorable)
    app.add_exception_handler(OverflowError, _unstorable)
    app.add_exception_handler(Exception, _unexpected)
