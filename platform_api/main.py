"""create_app(): the FastAPI application with every domain's router and the one error shape."""

from __future__ import annotations

import logging

from fastapi import FastAPI

from platform_api import errors
from platform_api.assessments.router import router as assessments_router
from platform_api.audit.router import router as audit_router
from platform_api.auth.router import router as auth_router
from platform_api.booking.router import router as booking_router
from platform_api.commerce.router import router as commerce_router
from platform_api.deps import app_settings
from platform_api.fhir.router import router as fhir_router
from platform_api.patients.router import router as patients_router
from platform_api.payments.router import router as payments_router
from platform_api.settings import Settings

ROUTERS = (auth_router, audit_router, patients_router, booking_router, assessments_router, fhir_router,
           commerce_router, payments_router)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API; `settings` replaces the environment's (tests, `coherency api` flags)."""
    app = FastAPI(title="Coherency platform API", version="0.1.0",
                  description="Patients, wound assessments, booking, commerce and payments.")
    if settings is not None:
        async def fixed_settings() -> Settings:
            return settings

        app.dependency_overrides[app_settings] = fixed_settings
    errors.install(app)
    for router in ROUTERS:
        app.include_router(router)

    @app.get("/health", tags=["health"])
    def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    # uvicorn's access log names paths (ids only) but never bodies or query values that could hold patient data
    logging.getLogger("platform_api").setLevel(logging.INFO)
    return app
