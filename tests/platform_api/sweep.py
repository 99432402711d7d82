"""Generating one schema-valid request per API operation with schemathesis, to call it with chosen ids."""

from __future__ import annotations

import contextlib

import hypothesis
import schemathesis
from schemathesis import GenerationMode


def operations(app) -> list:
    """Every operation in the app's OpenAPI schema."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    return [result.ok() for result in schema.get_all_operations()]


def path_names(operation) -> list[str]:
    return [p.name for p in operation.iter_parameters() if p.location.value == "path"]


def query_names(operation) -> list[str]:
    return [p.name for p in operation.iter_parameters() if p.location.value == "query"]


def valid_cases(operation, count: int, seed: int = 0) -> list:
    """Up to `count` distinct schema-valid cases (bodies, queries) for this operation."""
    return cases(operation, count, GenerationMode.POSITIVE, seed)


def cases(operation, count: int, mode: GenerationMode, seed: int = 0) -> list:
    """Up to `count` cases of this operation: schema-valid ones (POSITIVE) or schema-violating ones (NEGATIVE)."""
    found = []

    @hypothesis.seed(seed)
    @hypothesis.settings(max_examples=count, database=None, deadline=None, derandomize=True,
                         suppress_health_check=list(hypothesis.HealthCheck), phases=[hypothesis.Phase.generate])
    @hypothesis.given(operation.as_strategy(generation_mode=mode))
    def collect(case):
        found.append(case)

    # Unsatisfiable: nothing to violate (an operation without parameters or body has no invalid input)
    with contextlib.suppress(hypothesis.errors.Unsatisfiable):
        collect()
    return found
