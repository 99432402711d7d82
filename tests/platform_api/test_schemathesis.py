"""Property-based requests over the whole OpenAPI schema (schemathesis strategies, bounded): no 5xx, and every
error answer has the one JSON shape, or under /fhir a FHIR OperationOutcome. Schema-valid and schema-violating
data, sent as an admin and as a clinician, with real patients in the database."""

from __future__ import annotations

import pydantic
from fhir.resources.R4B.operationoutcome import OperationOutcome
from schemathesis import GenerationMode

from tests.platform_api.sweep import cases, operations

EXAMPLES_PER_OPERATION = 6


def test_no_server_errors_anywhere_in_the_schema(app, auth, world):
    callers = [{**auth(user), "Idempotency-Key": "schemathesis"} for user in (world.admin, world.clinician)]
    failures, sent = [], 0
    for operation in operations(app):
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for case in cases(operation, EXAMPLES_PER_OPERATION, mode):
                for headers in callers:
                    sent += 1
                    if problem := _problem(case, case.call(headers=headers)):
                        failures.append(problem)
    assert sent > 200, f"only {sent} requests were generated"
    assert not failures, f"{len(failures)} of {sent} requests failed:\n" + "\n".join(failures[:20])


def _problem(case, response) -> str | None:
    where = f"{case.method} {case.formatted_path} {case.query or ''}"
    if response.status_code >= 500:
        return f"{where}: {response.status_code} {response.text[:200]}"
    content_type = " ".join(response.headers.get("content-type", []))  # schemathesis keeps header value lists
    if response.status_code < 400:
        return None
    if case.path == "/fhir" or case.path.startswith("/fhir/"):
        if _is_outcome(content_type, response.content):
            return None
        return f"{where}: not an OperationOutcome ({content_type}) {response.text[:200]}"
    if "json" in content_type and set(response.json()) != {"error", "code"}:
        return f"{where}: error shape {response.text[:200]}"
    return None


def _is_outcome(content_type: str, body: bytes) -> bool:
    try:
        return content_type.startswith("application/fhir+json") and bool(OperationOutcome.model_validate_json(body))
    except pydantic.ValidationError:
        return False
