"""create_app adds every domain's routes to the app itself (main.add_routes): the same API as include_router."""

from __future__ import annotations

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute

from platform_api import main


def own_operations(app: FastAPI) -> list[APIRoute]:
    return [route for route in app.router.routes if isinstance(route, APIRoute)]


def test_every_path_operation_is_the_apps_own_with_the_schema_include_router_gives(monkeypatch):
    app = main.create_app()
    domains = {route.endpoint for router in main.ROUTERS for route in router.routes}
    assert domains <= {route.endpoint for route in own_operations(app)}
    monkeypatch.setattr(main, "add_routes", lambda app, router: app.include_router(router))
    included = main.create_app()
    assert [route.path for route in own_operations(included)] == ["/health"]  # the rest sit in included routers
    assert app.openapi() == included.openapi()
    assert len(app.openapi()["paths"]) > 40


def test_only_path_operations_are_copied():
    router = APIRouter()
    router.add_route("/plain", lambda request: None)
    with pytest.raises(TypeError, match="path operations only"):
        main.add_routes(FastAPI(), router)
