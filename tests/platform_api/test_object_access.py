"""Object-level authorization, walked over the whole OpenAPI schema: a patient and a clinician call every route
that takes a patient's record with the ids of another patient's records, with schema-valid bodies, and must get
403 or 404 every time. A route whose path names a record this test cannot make fails the test, so new routes
are covered as they are added."""

from __future__ import annotations

from datetime import timedelta

import pytest

from platform_api.assessments.models import Assessment, Scan
from platform_api.booking.models import Appointment, Slot, SlotStatus
from platform_api.commerce.models import Order, Prescription
from platform_api.db import utcnow
from platform_api.fhir.resources import observation_id
from platform_api.payments.models import PaymentIntent
from tests.platform_api.sweep import operations, path_names, query_names, valid_cases

# path parameters that do not name patient data: routes with only these are outside this test
NOT_PATIENT_DATA = {"product_id", "slot_id", "user_id", "provider"}
PATIENT_QUERY = {"patient", "patient_id"}


def other_patients_records(session, world) -> dict[str, str]:
    """Ids of records of the patient the callers may not see, by path parameter name."""
    other = world.other
    scan = Scan(wound_id=world.other_wound.id, patient_id=other.id, uploaded_by=world.other_clinician.id,
                captured_at=utcnow(), scan_key="scans/x/scan.ply", scan_format="ply", scan_bytes=10,
                scan_sha256="0" * 64, status="assessed")
    session.add(scan)
    session.flush()
    assessment = Assessment(scan_id=scan.id, wound_id=world.other_wound.id, patient_id=other.id,
                            captured_at=scan.captured_at, area_cm2=4.0, volume_cm3=1.0, max_depth_mm=3.0,
                            result={}, model_versions={}, flags=[])
    session.add(assessment)
    appointment = _booked_appointment(session, world)
    prescription = Prescription(patient_id=other.id, prescriber_id=world.other_clinician.id, dressing_type="foam",
                                quantity=5, valid_until=utcnow() + timedelta(days=30))
    order = Order(patient_id=other.id, placed_by=world.other_clinician.id, total_minor=1000, currency="EUR")
    session.add_all([prescription, order])
    session.flush()
    intent = PaymentIntent(order_id=order.id, patient_id=other.id, created_by=world.other_clinician.id,
                           amount_minor=1000, currency="EUR", provider="sandbox", status="requires_capture")
    session.add(intent)
    session.commit()
    return {"patient_id": other.id, "wound_id": world.other_wound.id, "scan_id": scan.id,
            "assessment_id": assessment.id, "appointment_id": appointment.id, "prescription_id": prescription.id,
            "order_id": order.id, "intent_id": intent.id, "observation_id": observation_id(assessment.id, "size")}


def _booked_appointment(session, world) -> Appointment:
    start = utcnow() + timedelta(days=2)
    slot = Slot(provider_id=world.other_clinician.id, starts_at=start, ends_at=start + timedelta(minutes=30),
                status=SlotStatus.booked)
    session.add(slot)
    session.flush()
    appointment = Appointment(slot_id=slot.id, patient_id=world.other.id, provider_id=world.other_clinician.id,
                              starts_at=slot.starts_at, ends_at=slot.ends_at, booked_by=world.other_clinician.id)
    session.add(appointment)
    session.flush()
    return appointment


def patient_scoped(operation) -> bool:
    names = set(path_names(operation)) | (set(query_names(operation)) & PATIENT_QUERY)
    return bool(names - NOT_PATIENT_DATA)


@pytest.mark.parametrize("who", ["patient_user", "clinician"])
def test_no_route_opens_another_patients_records(app, client, auth, session, world, who):
    ids = other_patients_records(session, world)
    headers = auth(getattr(world, who))
    scoped = [op for op in operations(app) if patient_scoped(op)]
    assert len(scoped) >= 10, "the sweep found too few patient routes to mean anything"
    leaks = []
    for operation in scoped:
        missing = [name for name in path_names(operation) if name not in ids and name not in NOT_PATIENT_DATA]
        assert not missing, f"{operation.label}: make a record of the other patient for {missing} in this test"
        status = _worst_status(operation, ids, headers)
        if status not in (403, 404):
            leaks.append(f"{operation.label} -> {status}")
    assert not leaks, "routes that did not refuse another patient's records:\n" + "\n".join(leaks)


def _worst_status(operation, ids: dict[str, str], headers: dict[str, str]) -> int:
    """The status of the first call that got past request validation (422 means the body was refused first)."""
    status = 422
    for case in valid_cases(operation, count=8):
        case.path_parameters = {name: ids.get(name, value) for name, value in (case.path_parameters or {}).items()}
        if case.query is not None:
            case.query = {k: (ids["patient_id"] if k in PATIENT_QUERY else v) for k, v in case.query.items()}
        for name in set(query_names(operation)) & PATIENT_QUERY:
            case.query = {**(case.query or {}), name: ids["patient_id"]}
        status = case.call(headers={**headers, "Idempotency-Key": "sweep"}).status_code
        if status != 422:
            return status
    return status
