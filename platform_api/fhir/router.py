from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from platform_api.deps import CallerDep, SessionDep
from platform_api.fhir import service
from platform_api.fhir.resources import FHIR_JSON

router = APIRouter(prefix="/fhir", tags=["fhir"])
OUTCOME_SCHEMA = {"type": "object", "required": ["resourceType", "issue"],
                  "properties": {"resourceType": {"const": "OperationOutcome"}, "issue": {"type": "array"}}}
OUTCOME = {"description": "the error, as a FHIR OperationOutcome", "content": {FHIR_JSON: {"schema": OUTCOME_SCHEMA}}}
FHIR_RESPONSE = {200: {"content": {FHIR_JSON: {}}}, 401: OUTCOME, 404: OUTCOME, 422: OUTCOME}


def fhir_response(resource) -> Response:
    return Response(resource.model_dump_json(), media_type=FHIR_JSON)


@router.get("/Patient/{patient_id}", response_class=Response, responses=FHIR_RESPONSE)
def read_patient(patient_id: str, session: SessionDep, caller: CallerDep) -> Response:
    """The patient as a FHIR R4 Patient."""
    return fhir_response(service.get_patient(session, caller=caller, patient_id=patient_id))


@router.get("/Observation", response_class=Response, responses=FHIR_RESPONSE)
def search_observations(request: Request, session: SessionDep, caller: CallerDep,
                        patient: Annotated[str, Query(min_length=1, max_length=60)]) -> Response:
    """The patient's wound observations (size panel, tissue) as a FHIR searchset Bundle."""
    base = str(request.base_url).rstrip("/") + router.prefix
    return fhir_response(service.search_observations(session, caller=caller, patient=patient, base_url=base,
                                                     self_url=str(request.url)))


@router.get("/Observation/{observation_id}", response_class=Response, responses=FHIR_RESPONSE)
def read_observation(observation_id: str, session: SessionDep, caller: CallerDep) -> Response:
    """One wound observation."""
    return fhir_response(service.get_observation(session, caller=caller, observation_id=observation_id))
