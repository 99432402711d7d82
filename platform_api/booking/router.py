from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from platform_api.booking import service
from platform_api.booking.models import AppointmentStatus, SlotStatus
from platform_api.booking.schemas import (
    AppointmentCreate,
    AppointmentRead,
    AvailabilityCreate,
    FollowUpRead,
    SlotRead,
    UTCTime,
)
from platform_api.deps import CallerDep, Limit, Offset, SessionDep, StaffCaller, WorkDep

router = APIRouter(tags=["booking"])

ProviderQuery = Annotated[str | None, Query(min_length=1, max_length=36, description="a user id, or `me`")]


@router.post("/availability", response_model=list[SlotRead], status_code=201)
def create_availability(body: AvailabilityCreate, session: SessionDep, caller: StaffCaller) -> list[SlotRead]:
    """Open a window of a clinician's or caregiver's time as slots (staff for themselves, an admin for anyone)."""
    return service.create_availability(session, caller=caller, data=body)


@router.get("/slots", response_model=list[SlotRead])
def list_slots(session: SessionDep, caller: CallerDep, provider_id: ProviderQuery = None,
               start: Annotated[UTCTime | None, Query(alias="from")] = None,
               end: Annotated[UTCTime | None, Query(alias="to")] = None, status: SlotStatus = SlotStatus.open,
               limit: Limit = 100, offset: Offset = 0) -> list[SlotRead]:
    """Slots starting from `from` (default now) until `to`; open ones for everyone, others for their provider."""
    return service.list_slots(session, caller=caller, provider_id=provider_id, start=start, end=end, status=status,
                              limit=limit, offset=offset)


@router.delete("/slots/{slot_id}", status_code=204)
def delete_slot(slot_id: str, session: SessionDep, caller: StaffCaller) -> Response:
    """Remove an open slot (its provider or an admin)."""
    service.delete_slot(session, caller=caller, slot_id=slot_id)
    return Response(status_code=204)


@router.post("/slots/{slot_id}/block", response_model=SlotRead)
def block_slot(slot_id: str, session: SessionDep, caller: StaffCaller) -> SlotRead:
    """Withdraw an open slot from booking (its provider or an admin)."""
    return service.block_slot(session, caller=caller, slot_id=slot_id)


@router.post("/appointments", response_model=AppointmentRead, status_code=201)
async def book(body: AppointmentCreate, work: WorkDep) -> AppointmentRead:
    """Book a slot for a patient (a patient for themself, staff for a patient they care for); 409 when taken."""
    return await work.run(service.book, AppointmentRead, data=body)


@router.get("/appointments", response_model=list[AppointmentRead])
def list_appointments(session: SessionDep, caller: CallerDep,
                      patient_id: Annotated[str | None, Query(min_length=1, max_length=36)] = None,
                      provider_id: ProviderQuery = None, status: AppointmentStatus | None = None,
                      limit: Limit = 100, offset: Offset = 0) -> list[AppointmentRead]:
    """A patient's appointments, the caller's schedule (provider_id=me), or all the caller may see."""
    return service.list_appointments(session, caller=caller, patient_id=patient_id, provider_id=provider_id,
                                     status=status, limit=limit, offset=offset)


@router.get("/appointments/{appointment_id}", response_model=AppointmentRead)
def get_appointment(appointment_id: str, session: SessionDep, caller: CallerDep) -> AppointmentRead:
    """One appointment."""
    return service.get_appointment(session, caller=caller, appointment_id=appointment_id)


@router.post("/appointments/{appointment_id}/cancel", response_model=AppointmentRead)
def cancel(appointment_id: str, session: SessionDep, caller: CallerDep) -> AppointmentRead:
    """Cancel an appointment (the patient or their staff); its slot opens again."""
    return service.cancel(session, caller=caller, appointment_id=appointment_id)


@router.get("/wounds/{wound_id}/follow-up", response_model=FollowUpRead)
def follow_up(wound_id: str, session: SessionDep, caller: CallerDep) -> FollowUpRead:
    """The suggested follow-up interval from the wound's prognosis or area trend, and the next slot to book."""
    return service.follow_up(session, caller=caller, wound_id=wound_id)
