"""Patients, consents, wounds and care teams, with the one rule every domain's authorization rests on:
an admin sees every patient, a patient only themself, a clinician or caregiver only the patients assigned to them.
Records a caller may not see are reported as not found.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Select, bindparam, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from platform_api.audit.service import add_recorded, record, record_read
from platform_api.auth.models import Role, User
from platform_api.db import utcnow
from platform_api.errors import Conflict, Forbidden, Invalid, NotFound
from platform_api.patients.models import CareAssignment, Consent, Patient, Wound
from platform_api.patients.schemas import ConsentCreate, PatientCreate, PatientUpdate, WoundCreate

if TYPE_CHECKING:
    from platform_api.deps import Caller


def can_see(session: Session, *, user: User, patient_id: str) -> bool:
    """Whether this user may see this patient's records."""
    if user.role == Role.admin:
        return True
    if user.role == Role.patient:
        return user.patient_id == patient_id
    return session.scalar(_ASSIGNED, {"patient_id": patient_id, "user_id": user.id}) is not None


# the care-team checks name the table's columns: a statement without ORM entities runs without the ORM's
# statement handling (same SQL)
_CARE, _PATIENTS = CareAssignment.__table__, Patient.__table__
_ASSIGNED = select(_CARE.c.id).where(_CARE.c.patient_id == bindparam("patient_id"),
                                     _CARE.c.user_id == bindparam("user_id"))


def visible_ids(user: User) -> Select | None:
    """A subquery of the patient ids this user may see; None for an admin (all of them)."""
    if user.role == Role.admin:
        return None
    if user.role == Role.patient:
        return select(Patient.id).where(Patient.id == user.patient_id)
    return select(CareAssignment.patient_id).where(CareAssignment.user_id == user.id)


def visible_patient(session: Session, *, caller: Caller, patient_id: str) -> Patient:
    """The patient, when the caller may see them; NotFound otherwise (one query)."""
    patient = session.scalar(_VISIBLE_PATIENT[caller.role], _parameters(caller.user, id=patient_id))
    if patient is None:
        raise NotFound(f"no patient {patient_id}")
    return patient


def require_visible_patient(session: Session, *, caller: Caller, patient_id: str) -> None:
    """NotFound unless the caller may see the patient: visible_patient's rule, for a write that needs only the
    check (the busiest ones, booking and checkout), without loading the patient into the session."""
    if session.execute(_VISIBLE_PATIENT_ID[caller.role], _parameters(caller.user, id=patient_id)).first() is None:
        raise NotFound(f"no patient {patient_id}")


def visible_wound(session: Session, *, caller: Caller, wound_id: str) -> Wound:
    """The wound, when the caller may see its patient; NotFound otherwise (one query)."""
    wound = session.scalar(_VISIBLE_WOUND[caller.role], _parameters(caller.user, id=wound_id))
    if wound is None:
        raise NotFound(f"no wound {wound_id}")
    return wound


def _where_visible(query: Select, user: User, patient_id) -> Select:
    """`query` narrowed to rows whose patient (the column `patient_id`) this user may see."""
    if user.role == Role.admin:
        return query
    if user.role == Role.patient:
        return query.where(patient_id == user.patient_id)
    return query.where(exists().where(_CARE.c.patient_id == patient_id, _CARE.c.user_id == user.id))


class _AnyUser:
    """A user of one role whose ids are bound parameters: _where_visible's query for every user of that role."""

    def __init__(self, role: Role) -> None:
        self.role, self.id, self.patient_id = role, bindparam("user_id"), bindparam("user_patient_id")


def _per_role(query: Select, patient_id) -> dict[Role, Select]:
    # built once, not per call: most requests look up a patient or a wound, and building the statement took about
    # half of the lookup's time (benchmarks/api.py)
    return {role: _where_visible(query, _AnyUser(role), patient_id) for role in Role}


def _parameters(user: User, **values: str) -> dict[str, str | None]:
    return {"user_id": user.id, "user_patient_id": user.patient_id, **values}


_VISIBLE_PATIENT = _per_role(select(Patient).where(Patient.id == bindparam("id")), Patient.id)
_VISIBLE_PATIENT_ID = _per_role(select(_PATIENTS.c.id).where(_PATIENTS.c.id == bindparam("id")), _PATIENTS.c.id)
_VISIBLE_WOUND = _per_role(select(Wound).where(Wound.id == bindparam("id")), Wound.patient_id)


def require_staff(caller: Caller) -> None:
    """Clinical writes are staff's: a patient may read these records, not change them."""
    if caller.role == Role.patient:
        raise Forbidden("only care staff may change clinical records")


def create(session: Session, *, caller: Caller, data: PatientCreate) -> Patient:
    """A new patient; a clinician or caregiver who creates one joins their care team."""
    patient = Patient(**data.model_dump())
    session.add(patient)
    _flush(session, "a patient with this medical record number exists already")
    if caller.role != Role.admin:
        session.add(CareAssignment(patient_id=patient.id, user_id=caller.user.id))
    record(session, caller=caller, action="create", resource_type="patient", resource_id=patient.id,
           patient_id=patient.id)
    session.commit()
    return patient


def get(session: Session, *, caller: Caller, patient_id: str) -> Patient:
    patient = visible_patient(session, caller=caller, patient_id=patient_id)
    record_read(session, caller=caller, resource_type="patient", resource_id=patient.id, patient_id=patient.id)
    return patient


def list_patients(session: Session, *, caller: Caller, limit: int, offset: int) -> list[Patient]:
    query = select(Patient).order_by(Patient.family_name, Patient.given_name, Patient.id)
    if (ids := visible_ids(caller.user)) is not None:
        query = query.where(Patient.id.in_(ids))
    patients = list(session.scalars(query.limit(limit).offset(offset)))
    for patient in patients:
        record(session, caller=caller, action="read", resource_type="patient", resource_id=patient.id,
               patient_id=patient.id)
    session.commit()
    return patients


def update(session: Session, *, caller: Caller, patient_id: str, data: PatientUpdate) -> Patient:
    patient = visible_patient(session, caller=caller, patient_id=patient_id)
    require_staff(caller)
    for name, value in data.model_dump(exclude_unset=True).items():
        if value is None:
            raise Invalid(f"{name} cannot be null")
        setattr(patient, name, value)
    record(session, caller=caller, action="update", resource_type="patient", resource_id=patient.id,
           patient_id=patient.id)
    session.commit()
    return patient


def add_consent(session: Session, *, caller: Caller, patient_id: str, data: ConsentCreate) -> Consent:
    """Record a consent given or refused; it replaces (revokes) the previous one of the same kind."""
    visible_patient(session, caller=caller, patient_id=patient_id)
    require_staff(caller)
    for previous in session.scalars(select(Consent).where(Consent.patient_id == patient_id, Consent.kind == data.kind,
                                                          Consent.revoked_at.is_(None))):
        previous.revoked_at = utcnow()
    consent = Consent(patient_id=patient_id, kind=data.kind, granted=data.granted, recorded_by=caller.user.id)
    return add_recorded(session, caller=caller, row=consent, resource_type="consent", patient_id=patient_id)


def list_consents(session: Session, *, caller: Caller, patient_id: str) -> list[Consent]:
    visible_patient(session, caller=caller, patient_id=patient_id)
    consents = list(session.scalars(select(Consent).where(Consent.patient_id == patient_id)
                                    .order_by(Consent.created_at, Consent.id)))
    record_read(session, caller=caller, resource_type="consent", resource_id=None, patient_id=patient_id)
    return consents


def add_wound(session: Session, *, caller: Caller, patient_id: str, data: WoundCreate) -> Wound:
    visible_patient(session, caller=caller, patient_id=patient_id)
    require_staff(caller)
    wound = Wound(patient_id=patient_id, **data.model_dump())
    return add_recorded(session, caller=caller, row=wound, resource_type="wound", patient_id=patient_id)


def list_wounds(session: Session, *, caller: Caller, patient_id: str) -> list[Wound]:
    visible_patient(session, caller=caller, patient_id=patient_id)
    wounds = list(session.scalars(select(Wound).where(Wound.patient_id == patient_id)
                                  .order_by(Wound.created_at, Wound.id)))
    record_read(session, caller=caller, resource_type="wound", resource_id=None, patient_id=patient_id)
    return wounds


def get_wound(session: Session, *, caller: Caller, wound_id: str) -> Wound:
    wound = visible_wound(session, caller=caller, wound_id=wound_id)
    record_read(session, caller=caller, resource_type="wound", resource_id=wound.id, patient_id=wound.patient_id)
    return wound


def assign(session: Session, *, caller: Caller, patient_id: str, user_id: str) -> CareAssignment:
    """Put a clinician or caregiver on the patient's care team (admins, or a clinician already on it)."""
    visible_patient(session, caller=caller, patient_id=patient_id)
    if caller.role not in (Role.admin, Role.clinician):
        raise Forbidden("only an admin or the patient's clinician may change the care team")
    member = session.get(User, user_id)
    if member is None or member.role not in (Role.clinician, Role.caregiver):
        raise Invalid(f"user {user_id} is not a clinician or caregiver")
    assignment = CareAssignment(patient_id=patient_id, user_id=user_id)
    session.add(assignment)
    _flush(session, f"user {user_id} is on this care team already")
    record(session, caller=caller, action="create", resource_type="care_assignment", resource_id=user_id,
           patient_id=patient_id)
    session.commit()
    return assignment


def care_team(session: Session, *, caller: Caller, patient_id: str) -> list[CareAssignment]:
    visible_patient(session, caller=caller, patient_id=patient_id)
    team = list(session.scalars(select(CareAssignment).where(CareAssignment.patient_id == patient_id)
                                .order_by(CareAssignment.created_at)))
    record_read(session, caller=caller, resource_type="care_assignment", resource_id=None, patient_id=patient_id)
    return team


def _flush(session: Session, conflict: str) -> None:
    """Insert what is pending; a unique constraint it breaks is the client's conflict."""
    try:
        session.flush()
    except IntegrityError as e:
        session.rollback()
        raise Conflict(conflict) from e
