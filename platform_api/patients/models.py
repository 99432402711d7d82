"""Patients, their consents, their wounds and the staff assigned to their care."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import Enum, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from platform_api.db import Base, IdMixin


class Etiology(enum.StrEnum):
    diabetic_foot_ulcer = "diabetic_foot_ulcer"
    venous_leg_ulcer = "venous_leg_ulcer"
    pressure_injury = "pressure_injury"
    arterial_ulcer = "arterial_ulcer"
    surgical = "surgical"
    other = "other"


class ConsentKind(enum.StrEnum):
    treatment = "treatment"
    photography = "photography"
    data_use = "data_use"  # de-identified use for model training and monitoring


class Patient(IdMixin, Base):
    __tablename__ = "patients"

    given_name: Mapped[str] = mapped_column(String(100))
    family_name: Mapped[str] = mapped_column(String(100))
    birth_date: Mapped[date]
    sex: Mapped[str] = mapped_column(String(16))  # FHIR administrative gender: male, female, other, unknown
    mrn: Mapped[str | None] = mapped_column(String(40), unique=True)  # the clinic's medical record number


class Consent(IdMixin, Base):
    __tablename__ = "consents"

    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), index=True)
    kind: Mapped[ConsentKind] = mapped_column(Enum(ConsentKind, native_enum=False, length=16))
    granted: Mapped[bool]
    recorded_by: Mapped[str] = mapped_column(ForeignKey("users.id"))
    revoked_at: Mapped[datetime | None]


class Wound(IdMixin, Base):
    __tablename__ = "wounds"

    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), index=True)
    etiology: Mapped[Etiology] = mapped_column(Enum(Etiology, native_enum=False, length=32))
    body_site: Mapped[str] = mapped_column(String(60))
    onset_date: Mapped[date]
    # the wound's key in the feature store, when its history is there (the prognosis reads it)
    feature_key: Mapped[str | None] = mapped_column(String(64))


class CareAssignment(IdMixin, Base):
    """A clinician or caregiver who may see and act on one patient's records."""

    __tablename__ = "care_assignments"
    __table_args__ = (UniqueConstraint("patient_id", "user_id"),)

    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
