"""The API in its own process on PostgreSQL: it starts, migrates, answers and signs users in."""

from __future__ import annotations

import httpx
import pytest

from platform_api.auth import service as users
from platform_api.auth.models import Role
from tests.platform_api.conftest import PASSWORD
from tests.platform_api.live import live_api  # noqa: F401 - fixture

pytestmark = pytest.mark.postgres


def test_signs_in_and_serves_the_schema(live_api):  # noqa: F811
    with live_api.session() as session:
        user = users.create(session, email="live-admin@example.org", password=PASSWORD, role=Role.admin)
    token = httpx.post(f"{live_api.url}/auth/token", data={"username": user.email, "password": PASSWORD}).json()
    me = httpx.get(f"{live_api.url}/auth/me", headers={"Authorization": f"Bearer {token['access_token']}"})
    assert me.json()["role"] == "admin"
    assert "/patients" in httpx.get(f"{live_api.url}/openapi.json").json()["paths"]
