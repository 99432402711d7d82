"""Availability, slots and appointments.

Races are settled by the database: a slot is taken by one conditional UPDATE (open -> booked) whose row count says
who won, backed by a unique index on live appointments; availability changes of one provider queue on their
calendar row's lock. Open slots carry no patient data; appointments do, and every read or write is audited.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Row, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from platform_api.assessments.models import Assessment
from platform_api.audit.service import insert_record, record, record_read
from platform_api.auth.models import Role, User
from platform_api.booking.cadence import area_reduction, cadence
from platform_api.booking.models import Appointment, AppointmentStatus, Calendar, Slot, SlotStatus
from platform_api.booking.schemas import AppointmentCreate, AppointmentRead, AvailabilityCreate, FollowUpRead, SlotRead
from platform_api.db import new_id, utcnow
from platform_api.errors import Conflict, Forbidden, Invalid, NotFound
from platform_api.patients.models import CareAssignment
from platform_api.patients.service import (
    can_see,
    require_visible_patient,
    visible_ids,
    visible_patient,
    visible_wound,
)

if TYPE_CHECKING:
    from platform_api.deps import Caller

PROVIDERS = (Role.clinician, Role.caregiver)
NO_SYNC = {"synchronize_session": False}


def create_availability(session: Session, *, caller: Caller, data: AvailabilityCreate) -> list[Slot]:
    """Cut a provider's window into slots; 409 when it overlaps any slot the provider has already."""
    provider = _provider(session, caller=caller, provider_id=data.provider_id or caller.user.id)
    if data.starts_at <= utcnow():
        raise Invalid("availability must start in the future")
    step = timedelta(minutes=data.slot_minutes)
    end = data.starts_at + step * data.slot_count
    _lock_calendar(session, provider.id)
    # under the calendar lock, this check sees every slot a concurrent request for this provider committed
    overlapping = select(Slot.id).where(Slot.provider_id == provider.id, Slot.starts_at < end,
                                        Slot.ends_at > data.starts_at).limit(1)
    if session.scalar(overlapping) is not None:
        raise Conflict(f"this window overlaps slots that provider {provider.id} has already")
    slots = [Slot(provider_id=provider.id, starts_at=data.starts_at + step * i,
                  ends_at=data.starts_at + step * (i + 1)) for i in range(data.slot_count)]
    session.add_all(slots)
    session.commit()
    return slots


def _provider(session: Session, *, caller: Caller, provider_id: str) -> User:
    if caller.role != Role.admin and provider_id != caller.user.id:
        raise Forbidden("staff open availability for themselves; only an admin may for someone else")
    provider = session.get(User, provider_id)
    if provider is None or provider.role not in PROVIDERS or not provider.is_active:
        raise Invalid(f"user {provider_id} is not an active clinician or caregiver")
    return provider


def _lock_calendar(session: Session, provider_id: str) -> None:
    """Hold the provider's calendar row until commit, so their availability requests run one after another
    (PostgreSQL: a row lock, and each statement at read committed sees what the previous holder committed;
    SQLite: one writer at a time anyway)."""
    bump = update(Calendar).where(Calendar.provider_id == provider_id).values(revision=Calendar.revision + 1)
    if session.execute(bump, execution_options=NO_SYNC).rowcount:
        return
    try:
        with session.begin_nested():
            session.add(Calendar(provider_id=provider_id))
    except IntegrityError:
        # a concurrent first request made the row; wait for its lock like any later request
        session.execute(bump, execution_options=NO_SYNC)


def list_slots(session: Session, *, caller: Caller, provider_id: str | None, start: datetime | None,
               end: datetime | None, status: SlotStatus, limit: int, offset: int) -> list[Slot]:
    """Slots by start time, from now unless `start` says otherwise; booked and blocked ones for their provider only."""
    provider_id = caller.user.id if provider_id == "me" else provider_id
    if status != SlotStatus.open and caller.role != Role.admin and provider_id != caller.user.id:
        raise Forbidden("booked and blocked slots are listed for their provider (provider_id=me) and admins only")
    query = select(Slot).where(Slot.status == status, Slot.starts_at >= (start or utcnow()))
    if end is not None:
        query = query.where(Slot.starts_at < end)
    if provider_id is not None:
        query = query.where(Slot.provider_id == provider_id)
    return list(session.scalars(query.order_by(Slot.starts_at, Slot.id).limit(limit).offset(offset)))


def delete_slot(session: Session, *, caller: Caller, slot_id: str) -> None:
    """Remove an open slot (its provider or an admin)."""
    _own_slot(session, caller=caller, slot_id=slot_id)
    try:
        removed = session.execute(delete(Slot).where(Slot.id == slot_id, Slot.status == SlotStatus.open),
                                  execution_options=NO_SYNC).rowcount
        session.commit()
    except IntegrityError as e:
        session.rollback()
        raise Conflict("this slot has cancelled appointments on record: block it instead") from e
    if not removed:
        raise Conflict("only an open slot can be removed")


def block_slot(session: Session, *, caller: Caller, slot_id: str) -> Slot:
    """Withdraw an open slot from booking (its provider or an admin)."""
    slot = _own_slot(session, caller=caller, slot_id=slot_id)
    blocked = session.execute(update(Slot).where(Slot.id == slot_id, Slot.status == SlotStatus.open)
                              .values(status=SlotStatus.blocked), execution_options=NO_SYNC).rowcount
    if not blocked:
        raise Conflict("only an open slot can be blocked")
    session.commit()
    session.refresh(slot)
    return slot


def _own_slot(session: Session, *, caller: Caller, slot_id: str) -> Slot:
    slot = session.get(Slot, slot_id)
    if slot is None:
        raise NotFound(f"no slot {slot_id}")
    if caller.role != Role.admin and slot.provider_id != caller.user.id:
        raise Forbidden("only the slot's provider or an admin may change it")
    return slot


def book(session: Session, *, caller: Caller, data: AppointmentCreate) -> AppointmentRead:
    """Book an open slot for a patient the caller may see; exactly one of concurrent requests wins a slot."""
    require_visible_patient(session, caller=caller, patient_id=data.patient_id)
    if data.wound_id is not None:
        wound = visible_wound(session, caller=caller, wound_id=data.wound_id)
        if wound.patient_id != data.patient_id:
            raise Invalid(f"wound {data.wound_id} is not this patient's")
    slot = _take(session, slot_id=data.slot_id)
    appointment = AppointmentRead(id=new_id(), slot_id=slot.id, patient_id=data.patient_id, wound_id=data.wound_id,
                                  provider_id=slot.provider_id, starts_at=slot.starts_at, ends_at=slot.ends_at,
                                  status=AppointmentStatus.booked, reason=data.reason, booked_by=caller.user.id,
                                  created_at=utcnow(), cancelled_at=None)
    session.execute(_NEW_APPOINTMENT, appointment.model_dump(exclude={"cancelled_at"}))
    insert_record(session, caller=caller, action="create", resource_type="appointment", resource_id=appointment.id,
                  patient_id=data.patient_id)
    session.commit()
    return appointment


# Booking is the busiest write: its statements are built once, in Core (one INSERT, no unit of work)
_SLOTS = Slot.__table__
_SLOT = select(_SLOTS).where(_SLOTS.c.id == bindparam("slot_id"))
_SLOT_STATUS = select(_SLOTS.c.status).where(_SLOTS.c.id == bindparam("slot_id"))
_TAKE = (update(_SLOTS).where(_SLOTS.c.id == bindparam("slot_id"), _SLOTS.c.status == SlotStatus.open)
         .values(status=SlotStatus.booked))
_NEW_APPOINTMENT = insert(Appointment.__table__)


def _take(session: Session, *, slot_id: str) -> Row:
    """The slot, booked by this transaction: one conditional UPDATE decides between concurrent requests (a loser's
    UPDATE waits for the winner's commit, then matches no row)."""
    slot = session.execute(_SLOT, {"slot_id": slot_id}).one_or_none()
    if slot is None:
        raise NotFound(f"no slot {slot_id}")
    if slot.starts_at <= utcnow():
        raise Invalid("this slot is in the past")
    if session.execute(_TAKE, {"slot_id": slot.id}).rowcount != 1:
        status = session.scalar(_SLOT_STATUS, {"slot_id": slot.id})
        raise Conflict("slot already booked" if status == SlotStatus.booked else "slot is not open for booking")
    return slot


def list_appointments(session: Session, *, caller: Caller, patient_id: str | None, provider_id: str | None,
                      status: AppointmentStatus | None, limit: int, offset: int) -> list[Appointment]:
    """A patient's appointments, a provider's schedule (provider_id=me), or by default all the caller may see."""
    query = select(Appointment)
    if patient_id is not None:
        visible_patient(session, caller=caller, patient_id=patient_id)
        query = query.where(Appointment.patient_id == patient_id)
    if provider_id is not None:
        query = query.where(Appointment.provider_id == _schedule_owner(caller, provider_id))
    elif patient_id is None and (ids := visible_ids(caller.user)) is not None:
        query = query.where(Appointment.patient_id.in_(ids) | (Appointment.provider_id == caller.user.id))
    if status is not None:
        query = query.where(Appointment.status == status)
    query = query.order_by(Appointment.starts_at, Appointment.id).limit(limit).offset(offset)
    appointments = list(session.scalars(query))
    for appointment in appointments:
        record(session, caller=caller, action="read", resource_type="appointment", resource_id=appointment.id,
               patient_id=appointment.patient_id)
    if patient_id is not None and not appointments:  # "none" is also something learnt about the patient
        record(session, caller=caller, action="read", resource_type="appointment", resource_id=None,
               patient_id=patient_id)
    session.commit()
    return appointments


def _schedule_owner(caller: Caller, provider_id: str) -> str:
    """Whose schedule the caller asks for: their own (`me`), or anyone's for an admin."""
    if caller.role == Role.patient:
        raise Forbidden("only staff have a schedule; list a patient's appointments with patient_id")
    provider_id = caller.user.id if provider_id == "me" else provider_id
    if caller.role != Role.admin and provider_id != caller.user.id:
        raise Forbidden("staff see their own schedule (provider_id=me); only an admin sees anyone's")
    return provider_id


def get_appointment(session: Session, *, caller: Caller, appointment_id: str) -> Appointment:
    """One appointment the caller may see."""
    appointment = _visible_appointment(session, caller=caller, appointment_id=appointment_id)
    record_read(session, caller=caller, resource_type="appointment", resource_id=appointment.id,
                patient_id=appointment.patient_id)
    return appointment


def cancel(session: Session, *, caller: Caller, appointment_id: str) -> Appointment:
    """Cancel a booked appointment and reopen its slot, in one transaction; 409 when it is cancelled already."""
    appointment = _visible_appointment(session, caller=caller, appointment_id=appointment_id)
    cancelled = session.execute(
        update(Appointment).where(Appointment.id == appointment.id, Appointment.status == AppointmentStatus.booked)
        .values(status=AppointmentStatus.cancelled, cancelled_at=utcnow(), cancelled_by=caller.user.id),
        execution_options=NO_SYNC).rowcount
    if not cancelled:
        raise Conflict("this appointment is cancelled already")
    session.execute(update(Slot).where(Slot.id == appointment.slot_id, Slot.status == SlotStatus.booked)
                    .values(status=SlotStatus.open), execution_options=NO_SYNC)
    record(session, caller=caller, action="update", resource_type="appointment", resource_id=appointment.id,
           patient_id=appointment.patient_id)
    session.commit()
    session.refresh(appointment)
    return appointment


def _visible_appointment(session: Session, *, caller: Caller, appointment_id: str) -> Appointment:
    """The appointment, for its provider and whoever may see its patient; NotFound otherwise."""
    appointment = session.get(Appointment, appointment_id)
    if appointment is None or (appointment.provider_id != caller.user.id
                               and not can_see(session, user=caller.user, patient_id=appointment.patient_id)):
        raise NotFound(f"no appointment {appointment_id}")
    return appointment


def follow_up(session: Session, *, caller: Caller, wound_id: str) -> FollowUpRead:
    """When the wound should be seen next and why (the cadence rule), and the care team's earliest open slot."""
    wound = visible_wound(session, caller=caller, wound_id=wound_id)
    history = list(session.scalars(select(Assessment).where(Assessment.wound_id == wound.id)
                                   .order_by(Assessment.captured_at.desc(), Assessment.id)))
    latest = history[0] if history else None
    areas = [(a.captured_at, a.area_cm2) for a in history if a.area_cm2 is not None]
    rule = cadence(assessed=latest is not None, p_heal_12w=latest.p_heal_12w if latest else None,
                   area_reduction=area_reduction(areas))
    now = utcnow()
    due = latest.captured_at + timedelta(days=rule.interval_days) if latest else now
    reasons = list(rule.reasons)
    if due < now:
        reasons.append(f"overdue since {due:%Y-%m-%d}: book the earliest slot")
    slot = _team_slot(session, patient_id=wound.patient_id, earliest=max(due - timedelta(days=1), now))
    record_read(session, caller=caller, resource_type="follow_up", resource_id=wound.id, patient_id=wound.patient_id)
    return FollowUpRead(wound_id=wound.id, patient_id=wound.patient_id, basis=rule.basis,
                        interval_days=rule.interval_days, due_at=due, reasons=reasons,
                        latest_assessment_id=latest.id if latest else None,
                        next_slot=SlotRead.model_validate(slot) if slot else None)


def _team_slot(session: Session, *, patient_id: str, earliest: datetime) -> Slot | None:
    """The earliest open slot from `earliest` on of a clinician or caregiver on the patient's care team."""
    team = (select(CareAssignment.user_id).join(User, User.id == CareAssignment.user_id)
            .where(CareAssignment.patient_id == patient_id, User.role.in_(PROVIDERS), User.is_active))
    query = select(Slot).where(Slot.provider_id.in_(team), Slot.status == SlotStatus.open, Slot.starts_at >= earliest)
    return session.scalar(query.order_by(Slot.starts_at, Slot.id).limit(1))
