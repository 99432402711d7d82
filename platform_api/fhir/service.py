"""FHIR reads: the same access rules and audit records as the rest of the API (a record the caller may not see
is not found)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient as FhirPatient
from sqlalchemy import select
from sqlalchemy.orm import Session

from platform_api.assessments.models import Assessment
from platform_api.assessments.service import visible_assessment
from platform_api.audit.service import record_read
from platform_api.errors import NotFound
from platform_api.fhir import resources
from platform_api.patients.models import Wound
from platform_api.patients.service import visible_patient

if TYPE_CHECKING:
    from platform_api.deps import Caller


def get_patient(session: Session, *, caller: Caller, patient_id: str) -> FhirPatient:
    """The patient as a FHIR Patient."""
    patient = visible_patient(session, caller=caller, patient_id=patient_id)
    record_read(session, caller=caller, resource_type="patient", resource_id=patient.id, patient_id=patient.id)
    return resources.patient_resource(patient)


def search_observations(session: Session, *, caller: Caller, patient: str, base_url: str,
                        self_url: str) -> Bundle:
    """Every wound observation of the patient (`patient`: an id or Patient/id), oldest capture first."""
    patient_id = patient.removeprefix("Patient/")
    visible_patient(session, caller=caller, patient_id=patient_id)
    query = (select(Assessment, Wound).join(Wound, Wound.id == Assessment.wound_id)
             .where(Assessment.patient_id == patient_id)
             .order_by(Assessment.captured_at, Assessment.created_at, Assessment.id))
    found = [o for assessment, wound in session.execute(query)
             for o in resources.assessment_observations(assessment, wound)]
    record_read(session, caller=caller, resource_type="assessment", resource_id=None, patient_id=patient_id)
    return resources.search_bundle(found, base_url, self_url)


def get_observation(session: Session, *, caller: Caller, observation_id: str) -> Observation:
    """One of an assessment's observations by its id ({assessment id}-size or -tissue)."""
    parsed = resources.parse_observation_id(observation_id)
    if parsed is None:
        raise NotFound(f"no Observation {observation_id}")
    try:
        assessment = visible_assessment(session, caller=caller, assessment_id=parsed[0])
    except NotFound as e:
        raise NotFound(f"no Observation {observation_id}") from e
    builder = resources.size_observation if parsed[1] == "size" else resources.tissue_observation
    observation = builder(assessment, session.get(Wound, assessment.wound_id))
    if observation is None:
        raise NotFound(f"no Observation {observation_id}: the assessment has no such values")
    record_read(session, caller=caller, resource_type="assessment", resource_id=assessment.id,
                patient_id=assessment.patient_id)
    return observation
