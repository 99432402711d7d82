"""Errors on the FHIR routes as FHIR clients expect them: an OperationOutcome (application/fhir+json) with one issue,
its FHIR issue type from the HTTP status and our error code (the same slugs as the API's {"error", "code"} shape)
as a coding of ERROR_SYSTEM. main.py installs it for the /fhir prefix (errors.install's `shapes`)."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi.responses import Response
from fhir.resources.R4B.operationoutcome import OperationOutcome

from platform_api.fhir.resources import ERROR_SYSTEM, FHIR_JSON

# HTTP status -> FHIR issue type (http://hl7.org/fhir/issue-type); other 4xx: processing, other 5xx: exception
ISSUE_TYPES = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 405: "not-supported",
               409: "conflict", 413: "too-costly", 415: "not-supported", 422: "invalid", 429: "throttled",
               502: "transient", 503: "transient", 504: "timeout"}


def operation_outcome(status: int, message: str, code: str, headers: Mapping[str, str] | None = None) -> Response:
    """The error as an OperationOutcome answer with this status (and headers, e.g. WWW-Authenticate)."""
    issue_type = ISSUE_TYPES.get(status, "exception" if status >= 500 else "processing")
    outcome = OperationOutcome(issue=[{
        "severity": "fatal" if status >= 500 else "error", "code": issue_type, "diagnostics": message,
        "details": {"coding": [{"system": ERROR_SYSTEM, "code": code}], "text": message}}])
    return Response(outcome.model_dump_json(), status_code=status, media_type=FHIR_JSON, headers=headers)
