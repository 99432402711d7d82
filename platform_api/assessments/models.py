"""Scans (the uploaded files, kept in object storage) and the assessments the serving API returned for them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from platform_api.db import Base, IdMixin


class Scan(IdMixin, Base):
    __tablename__ = "scans"

    wound_id: Mapped[str] = mapped_column(ForeignKey("wounds.id"), index=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), index=True)
    uploaded_by: Mapped[str] = mapped_column(ForeignKey("users.id"))
    captured_at: Mapped[datetime]
    scan_key: Mapped[str] = mapped_column(String(200))  # object-storage key of the PLY/PCD file
    scan_format: Mapped[str] = mapped_column(String(8))  # ply or pcd
    scan_bytes: Mapped[int]
    scan_sha256: Mapped[str] = mapped_column(String(64))
    photo_key: Mapped[str | None] = mapped_column(String(200))
    camera: Mapped[dict | None] = mapped_column(JSON)
    scan_metadata: Mapped[dict | None] = mapped_column(JSON)  # body site, device, exudate, ... (no identifiers)
    status: Mapped[str] = mapped_column(String(16), default="received")  # received, assessed, failed
    error: Mapped[str | None] = mapped_column(Text)

    @property
    def has_photo(self) -> bool:
        return self.photo_key is not None


class Assessment(IdMixin, Base):
    """What the serving API said about one scan; the numbers the other domains act on are columns."""

    __tablename__ = "assessments"

    scan_id: Mapped[str] = mapped_column(ForeignKey("scans.id"), unique=True)
    wound_id: Mapped[str] = mapped_column(ForeignKey("wounds.id"), index=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), index=True)
    captured_at: Mapped[datetime]
    area_cm2: Mapped[float | None]
    volume_cm3: Mapped[float | None]
    max_depth_mm: Mapped[float | None]
    mean_depth_mm: Mapped[float | None]
    perimeter_cm: Mapped[float | None]
    length_cm: Mapped[float | None]
    width_cm: Mapped[float | None]
    surface_area_cm2: Mapped[float | None]
    tissue: Mapped[dict | None] = mapped_column(JSON)  # tissue class -> area fraction
    exudate: Mapped[str | None] = mapped_column(String(16))  # none, low, moderate, heavy (clinician's entry)
    p_heal_12w: Mapped[float | None]  # probability of closure within 12 weeks (the prognosis ensemble)
    weeks_to_closure: Mapped[float | None]
    flags: Mapped[list] = mapped_column(JSON, default=list)  # plausibility flags: [{"code", "message"}]
    model_versions: Mapped[dict] = mapped_column(JSON, default=dict)
    data_version: Mapped[str | None] = mapped_column(String(80))
    result: Mapped[dict] = mapped_column(JSON)  # the whole reply, as the serving API sent it
