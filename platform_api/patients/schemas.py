from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from platform_api.patients.models import ConsentKind, Etiology

Sex = Literal["male", "female", "other", "unknown"]


class PatientCreate(BaseModel):
    given_name: str = Field(min_length=1, max_length=100)
    family_name: str = Field(min_length=1, max_length=100)
    birth_date: date
    sex: Sex = "unknown"
    mrn: str | None = Field(None, min_length=1, max_length=40)


class PatientUpdate(BaseModel):
    given_name: str | None = Field(None, min_length=1, max_length=100)
    family_name: str | None = Field(None, min_length=1, max_length=100)
    birth_date: date | None = None
    sex: Sex | None = None


class PatientRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    given_name: str
    family_name: str
    birth_date: date
    sex: str
    mrn: str | None
    created_at: datetime


class ConsentCreate(BaseModel):
    kind: ConsentKind
    granted: bool


class ConsentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    patient_id: str
    kind: ConsentKind
    granted: bool
    recorded_by: str
    created_at: datetime
    revoked_at: datetime | None


class WoundCreate(BaseModel):
    etiology: Etiology
    body_site: str = Field(min_length=1, max_length=60)
    onset_date: date
    feature_key: str | None = Field(None, min_length=1, max_length=64)


class WoundRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    patient_id: str
    etiology: Etiology
    body_site: str
    onset_date: date
    feature_key: str | None
    created_at: datetime


class CareAssignmentCreate(BaseModel):
    user_id: str = Field(min_length=1, max_length=36)


class CareAssignmentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    patient_id: str
    user_id: str
    created_at: datetime
