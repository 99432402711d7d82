"""Races settled by PostgreSQL, against `coherency api` in its own process: simultaneous requests for one slot, and
simultaneous overlapping availability of one provider, each have exactly one winner."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from platform_api.auth import service as users
from platform_api.auth.models import Role
from platform_api.booking.models import Appointment, Slot, SlotStatus
from platform_api.db import utcnow
from platform_api.patients.models import CareAssignment, Patient
from tests.platform_api.conftest import PASSWORD
from tests.platform_api.live import live_api  # noqa: F401 - fixture

pytestmark = pytest.mark.postgres

BOOKERS = 50


def all_at_once(url: str, requests: list[tuple[str, dict, dict]]) -> list[httpx.Response]:
    """POST every (path, json, headers) from its own thread and connection, released together by a barrier."""
    barrier = threading.Barrier(len(requests))

    def send(request: tuple[str, dict, dict]) -> httpx.Response:
        path, body, headers = request
        with httpx.Client(base_url=url, timeout=120) as client:
            client.get("/health")  # connect before the barrier, so the POSTs leave together
            barrier.wait(timeout=60)
            return client.post(path, json=body, headers=headers)

    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        return list(pool.map(send, requests))


def statuses(responses: list[httpx.Response]) -> list[int]:
    return sorted(r.status_code for r in responses)


@pytest.fixture(scope="module")
def clinician(live_api):  # noqa: F811
    with live_api.session() as session:
        return users.create(session, email="race-clinician@example.org", password=PASSWORD, role=Role.clinician)


def make_patients(live_api, clinician, count: int) -> list[str]:  # noqa: F811
    """`count` patients in the clinician's care, so that each request books for a different patient."""
    with live_api.session() as session:
        patients = [Patient(given_name="Race", family_name=f"Patient {i}", birth_date=utcnow().date(), sex="unknown")
                    for i in range(count)]
        session.add_all(patients)
        session.flush()
        session.add_all(CareAssignment(patient_id=p.id, user_id=clinician.id) for p in patients)
        session.commit()
        return [p.id for p in patients]


def test_one_of_fifty_simultaneous_bookings_wins_the_slot(live_api, clinician):  # noqa: F811
    with live_api.session() as session:
        slot = Slot(provider_id=clinician.id, starts_at=utcnow() + timedelta(days=1),
                    ends_at=utcnow() + timedelta(days=1, minutes=30))
        session.add(slot)
        session.commit()
    headers = live_api.headers(clinician)
    requests = [("/appointments", {"slot_id": slot.id, "patient_id": patient_id}, headers)
                for patient_id in make_patients(live_api, clinician, BOOKERS)]
    responses = all_at_once(live_api.url, requests)
    assert statuses(responses) == [201] + [409] * (BOOKERS - 1), [r.text for r in responses if r.status_code >= 500]
    winner = next(r.json() for r in responses if r.status_code == 201)
    assert all(r.json() == {"error": "slot already booked", "code": "conflict"} for r in responses
               if r.status_code == 409)
    with live_api.session() as session:
        booked = session.scalars(select(Appointment).where(Appointment.slot_id == slot.id)).all()
        assert [(a.id, a.status) for a in booked] == [(winner["id"], "booked")]
        assert session.get(Slot, slot.id).status == SlotStatus.booked


def test_one_of_overlapping_simultaneous_availabilities_wins(live_api, clinician):  # noqa: F811
    start = (utcnow() + timedelta(days=3)).replace(minute=0, second=0, microsecond=0)
    headers = live_api.headers(clinician)

    def window(shift: int) -> dict:  # two hours from `start` + 10 minutes times shift: every pair overlaps
        begins = start + timedelta(minutes=10 * shift)
        return {"starts_at": begins.isoformat(), "ends_at": (begins + timedelta(hours=2)).isoformat(),
                "slot_minutes": 15}

    responses = all_at_once(live_api.url, [("/availability", window(shift), headers) for shift in range(10)])
    assert statuses(responses) == [201] + [409] * 9, [r.text for r in responses if r.status_code >= 500]
    created = next(r.json() for r in responses if r.status_code == 201)
    with live_api.session() as session:
        ids = session.scalars(select(Slot.id).where(Slot.provider_id == clinician.id,
                                                    Slot.starts_at >= start - timedelta(hours=1))).all()
        assert sorted(ids) == sorted(s["id"] for s in created)
