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


def test_no_patient_data_in_the_server_log(live_api):  # noqa: F811
    with live_api.session() as session:
        clinician = users.create(session, email="log-check@example.org", password=PASSWORD, role=Role.clinician)
    headers = live_api.headers(clinician)
    body = {"given_name": "Zebulon", "family_name": "Quixotic", "birth_date": "1933-03-13", "mrn": "MRN-LOG-777"}
    created = httpx.post(f"{live_api.url}/patients", json=body, headers=headers)
    assert created.status_code == 201
    httpx.get(f"{live_api.url}/patients/{created.json()['id']}", headers=headers)
    duplicate = httpx.post(f"{live_api.url}/patients", json=body, headers=headers)  # a database error path
    assert duplicate.status_code == 409
    httpx.post(f"{live_api.url}/patients", json={**body, "birth_date": "not a date"}, headers=headers)
    log = live_api.log.read_text()
    assert "platform API on" in log  # the log is the server's
    for value in ("Zebulon", "Quixotic", "1933-03-13", "MRN-LOG-777"):
        assert value not in log
