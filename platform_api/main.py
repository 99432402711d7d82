"""create_app(): the FastAPI application with every domain's routes and the one error shape (serve_app: a server's)."""

from __future__ import annotations

import gc
import inspect
import logging

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute

from platform_api import errors
from platform_api.assessments.router import router as assessments_router
from platform_api.audit.router import router as audit_router
from platform_api.auth.router import router as auth_router
from platform_api.booking.router import router as booking_router
from platform_api.commerce.router import router as commerce_router
from platform_api.deps import app_settings
from platform_api.fhir.outcome import operation_outcome
from platform_api.fhir.router import router as fhir_router
from platform_api.patients.router import router as patients_router
from platform_api.payments.router import router as payments_router
from platform_api.settings import Settings

ROUTERS = (auth_router, audit_router, patients_router, booking_router, assessments_router, fhir_router,
           commerce_router, payments_router)
# what add_api_route takes besides path and endpoint; an APIRoute keeps each as an attribute of the same name
_ROUTE_OPTIONS = frozenset(inspect.signature(APIRouter.add_api_route).parameters) - {"self", "path", "endpoint"}


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API; `settings` replaces the environment's (tests, `coherency api` flags)."""
    app = FastAPI(title="Coherency platform API", version="0.1.0",
                  description="Patients, wound assessments, booking, commerce and payments.")
    if settings is not None:
        async def fixed_settings() -> Settings:
            return settings

        app.dependency_overrides[app_settings] = fixed_settings
    errors.install(app, shapes={fhir_router.prefix: operation_outcome})  # FHIR clients read OperationOutcomes
    for router in ROUTERS:
        add_routes(app, router)

    @app.get("/health", tags=["health"])
    def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    # uvicorn's access log names paths (ids only) but never bodies or query values that could hold patient data
    logging.getLogger("platform_api").setLevel(logging.INFO)
    return app


def serve_app() -> FastAPI:
    """create_app() for a server process (`coherency api`): what was allocated up to here, the imported libraries
    and the app itself, is moved out of the garbage collector's sight (gc.freeze).

    They live as long as the process, and every full collection would walk them again: about 220,000 objects here
    (matplotlib and fhir.resources among them), some 150 ms with every request stopped, about once per thousand
    requests under load (benchmarks/api.py).
    """
    app = create_app()
    gc.collect()  # nothing collectable is frozen with them
    gc.freeze()
    return app


def add_routes(app: FastAPI, router: APIRouter) -> None:
    """The router's routes as the app's own, the same operations (the same OpenAPI schema) as include_router gives.

    FastAPI (0.16x) keeps an included router as one route that it searches route by route on every request, and
    the matching router twice: 25 to 95 microseconds a request here, for the routers that come before the one that
    matches (benchmarks/api.py). Routers are included here without a prefix, tags or dependencies, so each route
    already holds all there is to copy.
    """
    for route in router.routes:
        if not isinstance(route, APIRoute):
            raise TypeError(f"{route!r}: add_routes copies path operations only")
        options = {name: getattr(route, name) for name in _ROUTE_OPTIONS if hasattr(route, name)}
        app.router.add_api_route(route.path, route.endpoint, route_class_override=type(route), **options)
