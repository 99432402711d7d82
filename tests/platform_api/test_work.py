"""The one-thread route path (deps.Work) and the access-token cache it reads: a remembered token still expires, the
user behind it is read on every request, and every request still leaves its audit record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from platform_api.audit.models import AuditRecord
from platform_api.auth import security

SECRET = "work-test-secret-" + "x" * 32


@pytest.fixture(autouse=True)
def fresh_cache():
    security._verified_access.cache_clear()
    yield
    security._verified_access.cache_clear()


def test_a_remembered_token_still_expires(monkeypatch):
    token, expires = security.encode_token(SECRET, "user-1", "access", timedelta(minutes=5), role="clinician")
    assert security.access_claims(SECRET, token)["sub"] == "user-1"
    assert security.access_claims(SECRET, token)["sub"] == "user-1"
    assert security._verified_access.cache_info().hits == 1  # the signature was checked once
    monkeypatch.setattr(security.time, "time", lambda: expires.timestamp() + 1)
    assert security.access_claims(SECRET, token) is None


def test_only_valid_access_tokens_are_remembered():
    refresh, _ = security.encode_token(SECRET, "user-1", "refresh", timedelta(days=1), jti="j")
    access, _ = security.encode_token(SECRET, "user-1", "access", timedelta(minutes=5))
    for refused in (refresh, access + "x", "abc.def.ghi"):
        assert security.access_claims(SECRET, refused) is None
    assert security.access_claims("another-secret-" + "y" * 32, access) is None
    assert security._verified_access.cache_info().currsize == 0
    with pytest.raises(TypeError):  # what the cache hands out is read-only: one request cannot change another's
        security.access_claims(SECRET, access)["sub"] = "someone else"


def booking(client, auth, world) -> dict:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    window = {"starts_at": start.isoformat(), "ends_at": (start + timedelta(hours=1)).isoformat(), "slot_minutes": 30}
    slots = client.post("/availability", json=window, headers=auth(world.clinician)).json()
    return {"slot_id": slots[0]["id"], "patient_id": world.patient.id}


def test_a_disabled_users_token_stops_working_at_once(client, auth, session, world):
    headers = auth(world.clinician)
    body = booking(client, auth, world)
    assert client.get(f"/patients/{world.patient.id}/cart", headers=headers).status_code == 200  # token remembered
    world.clinician.is_active = False
    session.commit()
    refused = client.post("/appointments", json=body, headers=headers)
    assert refused.status_code == 401 and "disabled" in refused.json()["error"]
    world.clinician.is_active = True
    session.commit()
    assert client.post("/appointments", json=body, headers=headers).status_code == 201


def test_a_route_on_work_authorizes_and_audits_in_its_one_transaction(client, auth, session, world):
    body = booking(client, auth, world)
    other = client.post("/appointments", json=body, headers=auth(world.other_clinician))
    assert other.status_code == 404  # not their patient: nothing taken, nothing written
    booked = client.post("/appointments", json=body, headers=auth(world.clinician))
    assert booked.status_code == 201, booked.text
    records = session.scalars(select(AuditRecord).where(AuditRecord.resource_id == booked.json()["id"])).all()
    assert [(r.actor_id, r.action, r.method, r.path) for r in records] == [
        (world.clinician.id, "create", "POST", "/appointments")]
    again = client.post("/appointments", json=body, headers=auth(world.clinician))
    assert again.status_code == 409 and again.json()["error"] == "slot already booked"
