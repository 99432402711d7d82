from __future__ import annotations

from fastapi import APIRouter

from platform_api.deps import CallerDep, Limit, Offset, SessionDep, StaffCaller
from platform_api.patients import service
from platform_api.patients.schemas import (
    CareAssignmentCreate,
    CareAssignmentRead,
    ConsentCreate,
    ConsentRead,
    PatientCreate,
    PatientRead,
    PatientUpdate,
    WoundCreate,
    WoundRead,
)

router = APIRouter(tags=["patients"])


@router.post("/patients", response_model=PatientRead, status_code=201)
def create_patient(body: PatientCreate, session: SessionDep, caller: StaffCaller) -> PatientRead:
    """Register a patient (staff); the creating clinician or caregiver joins the care team."""
    return service.create(session, caller=caller, data=body)


@router.get("/patients", response_model=list[PatientRead])
def list_patients(session: SessionDep, caller: CallerDep, limit: Limit = 100,
                  offset: Offset = 0) -> list[PatientRead]:
    """The patients the caller may see."""
    return service.list_patients(session, caller=caller, limit=limit, offset=offset)


@router.get("/patients/{patient_id}", response_model=PatientRead)
def get_patient(patient_id: str, session: SessionDep, caller: CallerDep) -> PatientRead:
    """One patient."""
    return service.get(session, caller=caller, patient_id=patient_id)


@router.patch("/patients/{patient_id}", response_model=PatientRead)
def update_patient(patient_id: str, body: PatientUpdate, session: SessionDep, caller: CallerDep) -> PatientRead:
    """Change a patient's details (staff)."""
    return service.update(session, caller=caller, patient_id=patient_id, data=body)


@router.post("/patients/{patient_id}/consents", response_model=ConsentRead, status_code=201)
def add_consent(patient_id: str, body: ConsentCreate, session: SessionDep, caller: CallerDep) -> ConsentRead:
    """Record a consent given or refused (staff); it replaces the previous one of its kind."""
    return service.add_consent(session, caller=caller, patient_id=patient_id, data=body)


@router.get("/patients/{patient_id}/consents", response_model=list[ConsentRead])
def list_consents(patient_id: str, session: SessionDep, caller: CallerDep) -> list[ConsentRead]:
    """Every consent recorded for the patient, revoked ones included."""
    return service.list_consents(session, caller=caller, patient_id=patient_id)


@router.post("/patients/{patient_id}/wounds", response_model=WoundRead, status_code=201)
def add_wound(patient_id: str, body: WoundCreate, session: SessionDep, caller: CallerDep) -> WoundRead:
    """Open a wound record (staff)."""
    return service.add_wound(session, caller=caller, patient_id=patient_id, data=body)


@router.get("/patients/{patient_id}/wounds", response_model=list[WoundRead])
def list_wounds(patient_id: str, session: SessionDep, caller: CallerDep) -> list[WoundRead]:
    """The patient's wounds."""
    return service.list_wounds(session, caller=caller, patient_id=patient_id)


@router.get("/wounds/{wound_id}", response_model=WoundRead)
def get_wound(wound_id: str, session: SessionDep, caller: CallerDep) -> WoundRead:
    """One wound."""
    return service.get_wound(session, caller=caller, wound_id=wound_id)


@router.post("/patients/{patient_id}/care-team", response_model=CareAssignmentRead, status_code=201)
def assign(patient_id: str, body: CareAssignmentCreate, session: SessionDep, caller: CallerDep) -> CareAssignmentRead:
    """Add a clinician or caregiver to the patient's care team."""
    return service.assign(session, caller=caller, patient_id=patient_id, user_id=body.user_id)


@router.get("/patients/{patient_id}/care-team", response_model=list[CareAssignmentRead])
def care_team(patient_id: str, session: SessionDep, caller: CallerDep) -> list[CareAssignmentRead]:
    """Who is on the patient's care team."""
    return service.care_team(session, caller=caller, patient_id=patient_id)
