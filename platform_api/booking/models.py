"""Providers' slots, the appointments booked into them, and one calendar row per provider."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import CheckConstraint, Enum, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from platform_api.db import Base, IdMixin


class SlotStatus(enum.StrEnum):
    open = "open"
    booked = "booked"
    blocked = "blocked"  # withdrawn by its provider; still occupies the provider's time


class AppointmentStatus(enum.StrEnum):
    booked = "booked"
    cancelled = "cancelled"


class Calendar(Base):
    """One row per provider who has opened availability; its row lock serialises that provider's availability
    changes, so the overlap check and the new slots act as one step (see service.create_availability)."""

    __tablename__ = "calendars"

    provider_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    revision: Mapped[int] = mapped_column(default=0)


class Slot(IdMixin, Base):
    """A bookable stretch of one clinician's or caregiver's time; it names no patient."""

    __tablename__ = "slots"
    __table_args__ = (Index("ix_slots_provider_starts", "provider_id", "starts_at"),
                      CheckConstraint("ends_at > starts_at", name="ordered"))

    provider_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    starts_at: Mapped[datetime] = mapped_column(index=True)
    ends_at: Mapped[datetime]
    status: Mapped[SlotStatus] = mapped_column(Enum(SlotStatus, native_enum=False, length=16),
                                              default=SlotStatus.open)


BOOKED = text("status = 'booked'")


class Appointment(IdMixin, Base):
    """A patient's booking of one slot; cancelled ones stay as the record of what happened."""

    __tablename__ = "appointments"
    # at most one live appointment per slot, whatever the application does (cancelled ones may repeat)
    __table_args__ = (Index("uq_appointments_booked_slot", "slot_id", unique=True, sqlite_where=BOOKED,
                            postgresql_where=BOOKED),)

    slot_id: Mapped[str] = mapped_column(ForeignKey("slots.id"), index=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), index=True)
    wound_id: Mapped[str | None] = mapped_column(ForeignKey("wounds.id"))
    # copied from the slot (slots never move), so a provider's schedule needs no join
    provider_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    status: Mapped[AppointmentStatus] = mapped_column(Enum(AppointmentStatus, native_enum=False, length=16),
                                                      default=AppointmentStatus.booked)
    reason: Mapped[str | None] = mapped_column(String(500))
    booked_by: Mapped[str] = mapped_column(ForeignKey("users.id"))
    cancelled_at: Mapped[datetime | None]
    cancelled_by: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
