"""Booking: availability cut into slots, appointments that take a slot exactly once, cancellation, who may do what,
the audit trail, and the follow-up cadence read from a wound's latest assessment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from platform_api.audit.models import AuditRecord
from platform_api.booking.models import Appointment, AppointmentStatus, Slot, SlotStatus
from platform_api.db import utcnow


def day(days: int, hour: int = 9, minute: int = 0) -> datetime:
    """`days` from today at hour:minute UTC."""
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight + timedelta(days=days, hours=hour, minutes=minute)


def window(start: datetime, end: datetime, minutes: int = 30, **extra) -> dict:
    return {"starts_at": start.isoformat(), "ends_at": end.isoformat(), "slot_minutes": minutes, **extra}


@pytest.fixture
def slots(client, auth, world) -> list[dict]:
    """Four open 30-minute slots of the patient's clinician, the day after tomorrow from 09:00."""
    response = client.post("/availability", json=window(day(2, 9), day(2, 11)), headers=auth(world.clinician))
    assert response.status_code == 201, response.text
    return response.json()


def book(client, headers, slot: dict, patient, **extra):
    return client.post("/appointments", json={"slot_id": slot["id"], "patient_id": patient.id, **extra},
                       headers=headers)


def test_availability_becomes_slots(client, auth, world, slots):
    assert [(datetime.fromisoformat(s["starts_at"]), datetime.fromisoformat(s["ends_at"])) for s in slots] == [
        (day(2, 9, 30 * i), day(2, 9, 30 * (i + 1))) for i in range(4)]
    assert {(s["provider_id"], s["status"]) for s in slots} == {(world.clinician.id, "open")}
    # a remainder shorter than one slot is left out; the window starts where the last one ended
    tail = client.post("/availability", json=window(day(2, 11), day(2, 12, 50), 40), headers=auth(world.clinician))
    assert tail.status_code == 201 and [datetime.fromisoformat(s["ends_at"]) for s in tail.json()] == [
        day(2, 11, 40), day(2, 12, 20)]
    listed = client.get("/slots", params={"provider_id": world.clinician.id}, headers=auth(world.patient_user))
    assert [s["id"] for s in listed.json()] == [s["id"] for s in slots + tail.json()]
    later = client.get("/slots", params={"provider_id": "me", "from": day(2, 10).isoformat(),
                                         "to": day(2, 11).isoformat()}, headers=auth(world.clinician))
    assert [s["id"] for s in later.json()] == [s["id"] for s in slots[2:]]
    naive = client.get("/slots", params={"from": "2026-12-01T09:00:00"}, headers=auth(world.clinician))
    assert naive.status_code == 422 and "timezone" in naive.json()["error"]


REFUSALS = [  # (change to a valid window, status, words in the error)
    ({"starts_at": day(2, 10, 45).isoformat()}, 409, "overlaps"),  # shifted into the existing 09:00-11:00
    ({"slot_minutes": 4}, 422, "slot_minutes"),
    ({"slot_minutes": 241}, 422, "slot_minutes"),
    ({"starts_at": day(2, 9).replace(tzinfo=None).isoformat()}, 422, "timezone"),
    ({"ends_at": day(2, 11).isoformat()}, 422, "at least one slot"),
    ({"ends_at": day(30, 11).isoformat(), "slot_minutes": 5}, 422, "at most 500"),
    ({"starts_at": day(-1).isoformat()}, 422, "future"),
    ({"starts_at": "0001-01-01T00:00:00+01:00"}, 422, "out of range"),
]


def test_availability_refusals(client, auth, world, slots):
    for change, status, message in REFUSALS:
        response = client.post("/availability", json={**window(day(2, 11), day(2, 13)), **change},
                               headers=auth(world.clinician))
        assert response.status_code == status and message in response.json()["error"], (change, response.text)
        assert response.json()["code"] == {409: "conflict", 422: "invalid"}[status]
    # the window itself is fine: each refusal was for its change
    fine = client.post("/availability", json=window(day(2, 11), day(2, 13)), headers=auth(world.clinician))
    assert fine.status_code == 201


def test_who_may_open_availability(client, auth, world):
    for_clinician = window(day(3, 9), day(3, 10), provider_id=world.clinician.id)
    assert client.post("/availability", json=for_clinician, headers=auth(world.caregiver)).status_code == 403
    assert client.post("/availability", json=for_clinician, headers=auth(world.patient_user)).status_code == 403
    assert client.post("/availability", json=for_clinician, headers=auth(world.admin)).status_code == 201
    for_patient = window(day(3, 9), day(3, 10), provider_id=world.patient_user.id)
    assert client.post("/availability", json=for_patient, headers=auth(world.admin)).status_code == 422
    assert client.post("/availability", json=window(day(3, 9), day(3, 10))).status_code == 401


def test_patient_books_for_themself_and_a_slot_is_taken_once(client, auth, world, slots, session):
    booked = book(client, auth(world.patient_user), slots[0], world.patient, wound_id=world.wound.id, reason="dressing")
    assert booked.status_code == 201, booked.text
    assert booked.json()["provider_id"] == world.clinician.id and booked.json()["status"] == "booked"
    again = book(client, auth(world.caregiver), slots[0], world.patient)
    assert again.status_code == 409 and again.json() == {"error": "slot already booked", "code": "conflict"}
    live = select(func.count()).select_from(Appointment).where(Appointment.slot_id == slots[0]["id"],
                                                               Appointment.status == AppointmentStatus.booked)
    assert session.scalar(live) == 1
    assert session.get(Slot, slots[0]["id"]).status == SlotStatus.booked
    open_ids = [s["id"] for s in client.get("/slots", headers=auth(world.other_user)).json()]
    assert slots[0]["id"] not in open_ids and slots[1]["id"] in open_ids


def test_booking_only_for_patients_the_caller_may_see(client, auth, world, slots):
    assert book(client, auth(world.patient_user), slots[0], world.other).status_code == 404
    assert book(client, auth(world.other_clinician), slots[0], world.patient).status_code == 404
    foreign_wound = book(client, auth(world.clinician), slots[0], world.patient, wound_id=world.other_wound.id)
    assert foreign_wound.status_code == 404
    mismatched = book(client, auth(world.admin), slots[0], world.patient, wound_id=world.other_wound.id)
    assert mismatched.status_code == 422 and "not this patient's" in mismatched.json()["error"]
    assert book(client, auth(world.caregiver), {"id": "no-such-slot"}, world.patient).status_code == 404
    assert book(client, auth(world.caregiver), slots[0], world.patient).status_code == 201


def test_a_past_slot_cannot_be_booked(client, auth, world, session):
    past = Slot(provider_id=world.clinician.id, starts_at=utcnow() - timedelta(hours=2),
                ends_at=utcnow() - timedelta(hours=1))
    session.add(past)
    session.commit()
    response = book(client, auth(world.patient_user), {"id": past.id}, world.patient)
    assert response.status_code == 422 and "past" in response.json()["error"]
    assert session.get(Slot, past.id).status == SlotStatus.open


def test_cancel_reopens_the_slot_once(client, auth, world, slots, session):
    appointment = book(client, auth(world.patient_user), slots[1], world.patient).json()
    cancelled = client.post(f"/appointments/{appointment['id']}/cancel", headers=auth(world.patient_user))
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["cancelled_at"] is not None
    assert session.get(Slot, slots[1]["id"]).status == SlotStatus.open
    twice = client.post(f"/appointments/{appointment['id']}/cancel", headers=auth(world.clinician))
    assert twice.status_code == 409
    assert book(client, auth(world.caregiver), slots[1], world.patient).status_code == 201


def test_who_may_see_and_cancel_an_appointment(client, auth, world, slots):
    appointment = book(client, auth(world.clinician), slots[0], world.patient).json()
    path = f"/appointments/{appointment['id']}"
    for outsider in (world.other_user, world.other_clinician):
        assert client.get(path, headers=auth(outsider)).status_code == 404
        assert client.post(f"{path}/cancel", headers=auth(outsider)).status_code == 404
    for insider in (world.patient_user, world.caregiver, world.admin):
        assert client.get(path, headers=auth(insider)).json()["id"] == appointment["id"]
    assert client.get(path).status_code == 401


def test_listing_appointments(client, auth, world, slots):
    # the other patient books the patient's clinician, who is not on their care team: the provider still sees it
    theirs = book(client, auth(world.other_user), slots[2], world.other).json()
    ours = book(client, auth(world.patient_user), slots[0], world.patient).json()

    def ids(user, **params):
        response = client.get("/appointments", params=params, headers=auth(user))
        return [a["id"] for a in response.json()] if response.status_code == 200 else response.status_code

    assert ids(world.patient_user) == [ours["id"]]
    assert ids(world.patient_user, patient_id=world.other.id) == 404
    assert ids(world.other_clinician, patient_id=world.patient.id) == 404
    assert ids(world.clinician, provider_id="me") == [ours["id"], theirs["id"]]
    assert ids(world.caregiver, provider_id="me") == []
    assert ids(world.caregiver) == [ours["id"]]
    assert ids(world.caregiver, provider_id=world.clinician.id) == 403
    assert ids(world.patient_user, provider_id="me") == 403
    assert ids(world.admin, provider_id=world.clinician.id, status="booked") == [ours["id"], theirs["id"]]
    assert ids(world.admin, patient_id=world.other.id, status="cancelled") == []
    assert client.get(f"/appointments/{theirs['id']}", headers=auth(world.clinician)).status_code == 200


def test_removing_and_blocking_slots(client, auth, world, slots):
    first, second, third, fourth = (f"/slots/{s['id']}" for s in slots)
    for stranger in (world.other_clinician, world.patient_user):
        assert client.delete(first, headers=auth(stranger)).status_code == 403
        assert client.post(f"{second}/block", headers=auth(stranger)).status_code == 403
    assert client.delete(first, headers=auth(world.clinician)).status_code == 204
    assert client.delete(first, headers=auth(world.clinician)).status_code == 404
    blocked = client.post(f"{second}/block", headers=auth(world.admin))
    assert blocked.status_code == 200 and blocked.json()["status"] == "blocked"
    refused = book(client, auth(world.patient_user), slots[1], world.patient)
    assert refused.status_code == 409 and refused.json()["error"] == "slot is not open for booking"
    appointment = book(client, auth(world.patient_user), slots[2], world.patient).json()
    assert client.delete(third, headers=auth(world.clinician)).status_code == 409
    assert client.post(f"{third}/block", headers=auth(world.clinician)).status_code == 409
    client.post(f"/appointments/{appointment['id']}/cancel", headers=auth(world.patient_user))
    assert client.delete(third, headers=auth(world.clinician)).status_code == 409  # its history stays
    listed = client.get("/slots", params={"provider_id": "me", "status": "blocked"}, headers=auth(world.clinician))
    assert [s["id"] for s in listed.json()] == [slots[1]["id"]]
    assert client.get("/slots", params={"status": "booked"}, headers=auth(world.caregiver)).status_code == 403
    assert client.post(f"{fourth}/block").status_code == 401


def test_appointments_are_audited(client, auth, world, slots, session):
    appointment = book(client, auth(world.patient_user), slots[0], world.patient).json()
    client.get("/appointments", params={"patient_id": world.patient.id, "status": "cancelled"},
               headers=auth(world.admin))
    client.get(f"/appointments/{appointment['id']}", headers=auth(world.caregiver))
    client.get("/appointments", params={"provider_id": "me"}, headers=auth(world.clinician))
    client.post(f"/appointments/{appointment['id']}/cancel", headers=auth(world.clinician))
    client.get(f"/wounds/{world.wound.id}/follow-up", headers=auth(world.patient_user))
    records = session.scalars(select(AuditRecord).where(AuditRecord.patient_id == world.patient.id)).all()
    seen = {(r.actor_id, r.action, r.resource_type, r.resource_id) for r in records}
    assert seen >= {(world.patient_user.id, "create", "appointment", appointment["id"]),
                    (world.caregiver.id, "read", "appointment", appointment["id"]),
                    (world.clinician.id, "read", "appointment", appointment["id"]),
                    (world.clinician.id, "update", "appointment", appointment["id"]),
                    (world.patient_user.id, "read", "follow_up", world.wound.id),
                    (world.admin.id, "read", "appointment", None)}
    assert not any(r.resource_type == "appointment" for r in records if r.actor_id == world.other_clinician.id)


def test_the_database_holds_one_live_appointment_per_slot(session, world):
    slot = Slot(provider_id=world.clinician.id, starts_at=day(2, 9), ends_at=day(2, 10))
    session.add(slot)
    session.flush()

    def appointment(status: AppointmentStatus) -> Appointment:
        return Appointment(slot_id=slot.id, patient_id=world.patient.id, provider_id=slot.provider_id,
                           starts_at=slot.starts_at, ends_at=slot.ends_at, booked_by=world.clinician.id, status=status)

    session.add_all([appointment(AppointmentStatus.cancelled), appointment(AppointmentStatus.cancelled),
                     appointment(AppointmentStatus.booked)])
    session.commit()  # cancelled ones may repeat
    session.add(appointment(AppointmentStatus.booked))
    with pytest.raises(IntegrityError):
        session.commit()
    session.rollback()
