from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from platform_api.booking.cadence import Basis
from platform_api.booking.models import AppointmentStatus, SlotStatus

MAX_SLOTS_PER_CALL = 500  # one request may not fill a calendar for years


def _in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError as e:  # 0001-01-01T00:00+01:00 and the like: a 422, not a failure at storage
        raise ValueError("this time is out of range in UTC") from e


UTCTime = Annotated[AwareDatetime, AfterValidator(_in_utc)]  # naive times are refused (422), aware ones made UTC


class AvailabilityCreate(BaseModel):
    provider_id: str | None = Field(None, min_length=1, max_length=36,
                                    description="whose time (an admin may name anyone); yourself when omitted")
    starts_at: UTCTime
    ends_at: UTCTime
    slot_minutes: int = Field(ge=5, le=240)

    @model_validator(mode="after")
    def _holds_some_slots(self) -> AvailabilityCreate:
        if self.slot_count < 1:
            raise ValueError("ends_at must leave room for at least one slot after starts_at")
        if self.slot_count > MAX_SLOTS_PER_CALL:
            raise ValueError(f"at most {MAX_SLOTS_PER_CALL} slots per call; this window holds {self.slot_count}")
        return self

    @property
    def slot_count(self) -> int:
        """How many whole slots fit between starts_at and ends_at (a shorter remainder is left out)."""
        return max(0, (self.ends_at - self.starts_at) // timedelta(minutes=self.slot_minutes))


class SlotRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    provider_id: str
    starts_at: datetime
    ends_at: datetime
    status: SlotStatus


class AppointmentCreate(BaseModel):
    slot_id: str = Field(min_length=1, max_length=36)
    patient_id: str = Field(min_length=1, max_length=36)
    wound_id: str | None = Field(None, min_length=1, max_length=36)
    reason: str | None = Field(None, min_length=1, max_length=500)


class AppointmentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    slot_id: str
    patient_id: str
    wound_id: str | None
    provider_id: str
    starts_at: datetime
    ends_at: datetime
    status: AppointmentStatus
    reason: str | None
    booked_by: str
    created_at: datetime
    cancelled_at: datetime | None


class FollowUpRead(BaseModel):
    wound_id: str
    patient_id: str
    basis: Basis
    interval_days: int
    due_at: datetime
    reasons: list[str]
    latest_assessment_id: str | None
    next_slot: SlotRead | None = Field(description="the earliest open slot of the care team from a day before due_at")
