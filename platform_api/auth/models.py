"""Users and their refresh tokens."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from platform_api.db import Base, IdMixin


class Role(enum.StrEnum):
    admin = "admin"
    clinician = "clinician"
    caregiver = "caregiver"
    patient = "patient"


STAFF = frozenset({Role.admin, Role.clinician, Role.caregiver})


class User(IdMixin, Base):
    __tablename__ = "users"

    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(Enum(Role, native_enum=False, length=16))
    # a patient's login is bound to one patient record; staff have none
    patient_id: Mapped[str | None] = mapped_column(ForeignKey("patients.id"), index=True)
    display_name: Mapped[str] = mapped_column(String(120), default="")
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_enabled: Mapped[bool] = mapped_column(default=False)
    is_active: Mapped[bool] = mapped_column(default=True)


class RefreshToken(IdMixin, Base):
    """One issued refresh token (by its JWT id); using it revokes it and issues the next (rotation)."""

    __tablename__ = "refresh_tokens"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    expires_at: Mapped[datetime]
    revoked: Mapped[bool] = mapped_column(default=False)
