"""FHIR R4 reads: the Patient, and the wound observations of stored assessments, parsed back with fhir.resources'
R4B models; LOINC codes and UCUM units; access and audit as everywhere else."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient

from platform_api.auth.models import Role
from platform_api.errors import Forbidden
from platform_api.fhir.resources import ERROR_SYSTEM, LOINC, MEASUREMENT_SYSTEM, TISSUE_SYSTEM, UCUM
from tests.platform_api.test_assessments_api import T0, stored_assessment

FHIR_JSON = "application/fhir+json"


@pytest.fixture
def ward(make_user, make_patient, make_wound):
    """A patient with an MRN and a wound, their clinician, their own login and a clinician of someone else."""

    class Ward:
        clinician, stranger = make_user(Role.clinician), make_user(Role.clinician)
        patient = make_patient(care_team=(clinician,), mrn="MRN-77", sex="female")
        wound = make_wound(patient, body_site="right heel")
        patient_user = make_user(Role.patient, patient)

    return Ward


def outcome(response, issue_type: str, code: str) -> OperationOutcome:
    """The response's OperationOutcome, checked: FHIR's media type, one error issue of this type and our code."""
    assert response.headers["content-type"].startswith(FHIR_JSON), response.headers["content-type"]
    parsed = OperationOutcome.model_validate_json(response.content)
    (issue,) = parsed.issue
    assert (issue.severity, issue.code) == ("error", issue_type)
    assert [(c.system, c.code) for c in issue.details.coding] == [(ERROR_SYSTEM, code)]
    assert issue.diagnostics == issue.details.text and issue.diagnostics
    return parsed


def components(observation: Observation) -> dict[str, tuple[str, float, str, str]]:
    """code -> (system, value, unit system, unit code) of each component."""
    out = {}
    for c in observation.component:
        coding, quantity = c.code.coding[0], c.valueQuantity
        out[coding.code] = (coding.system, float(quantity.value), quantity.system, quantity.code)
    return out


def test_patient_resource(client, auth, ward, make_user):
    response = client.get(f"/fhir/Patient/{ward.patient.id}", headers=auth(ward.clinician))
    assert response.status_code == 200 and response.headers["content-type"].startswith(FHIR_JSON)
    patient = Patient.model_validate_json(response.content)
    assert patient.id == ward.patient.id and patient.gender == "female"
    assert patient.name[0].family == "Example" and patient.name[0].given == ["Ada"]
    assert str(patient.birthDate) == "1950-05-17"
    assert [(i.type.coding[0].code, i.value) for i in patient.identifier] == [("MR", "MRN-77")]
    assert client.get(f"/fhir/Patient/{ward.patient.id}", headers=auth(ward.patient_user)).status_code == 200
    refused = client.get(f"/fhir/Patient/{ward.patient.id}", headers=auth(ward.stranger))
    assert refused.status_code == 404 and outcome(refused, "not-found", "not_found")


def test_observations_of_stored_assessments(client, auth, ward, session):
    measured = stored_assessment(session, ward.wound, ward.clinician, captured_at=T0, area=4.2, max_depth_mm=6.5,
                                 flags=[{"code": "sparse", "message": "few points"}])
    stored_assessment(session, ward.wound, ward.clinician, captured_at=T0 + timedelta(days=7), area=None)
    response = client.get("/fhir/Observation", params={"patient": ward.patient.id}, headers=auth(ward.clinician))
    assert response.status_code == 200 and response.headers["content-type"].startswith(FHIR_JSON)
    bundle = Bundle.model_validate_json(response.content)
    assert bundle.type == "searchset" and bundle.total == 2  # the unmeasured assessment has no observation
    size, tissue = (e.resource for e in bundle.entry)
    assert [e.fullUrl for e in bundle.entry] == [f"http://testserver/fhir/Observation/{measured.id}-{kind}"
                                                 for kind in ("size", "tissue")]
    assert size.code.coding[0].system == LOINC and size.code.coding[0].code == "72287-6"
    assert components(size) == {"39126-8": (LOINC, 2.5, UCUM, "cm"), "39125-0": (LOINC, 1.6, UCUM, "cm"),
                                "39127-6": (LOINC, 0.65, UCUM, "cm"), "89260-4": (LOINC, 4.2, UCUM, "cm2"),
                                "wound-volume": (MEASUREMENT_SYSTEM, 0.5, UCUM, "mL")}
    assert size.subject.reference == f"Patient/{ward.patient.id}" and size.bodySite.text == "right heel"
    assert size.effectiveDateTime == T0 and size.note[0].text == "sparse: few points"
    assert tissue.code.coding[0].code == "72371-8" and tissue.valueCodeableConcept.coding[0].code == "granulation"
    assert components(tissue) == {name: (TISSUE_SYSTEM, share, UCUM, "%")
                                  for name, share in (("granulation", 75.0), ("slough", 25.0), ("necrotic", 0.0))}
    one = client.get(f"/fhir/Observation/{measured.id}-tissue", headers=auth(ward.patient_user))
    assert Observation.model_validate_json(one.content) == tissue
    same = client.get("/fhir/Observation", params={"patient": f"Patient/{ward.patient.id}"},
                      headers=auth(ward.clinician))
    assert Bundle.model_validate_json(same.content).total == 2


def test_observation_access_and_audit(client, auth, ward, session, make_user):
    assessment = stored_assessment(session, ward.wound, ward.clinician, captured_at=T0)
    stranger = auth(ward.stranger)
    assert client.get("/fhir/Observation", params={"patient": ward.patient.id}, headers=stranger).status_code == 404
    assert client.get(f"/fhir/Observation/{assessment.id}-size", headers=stranger).status_code == 404
    for bad in (f"{assessment.id}-volume", "nonsense", f"{assessment.id}"):
        assert client.get(f"/fhir/Observation/{bad}", headers=auth(ward.clinician)).status_code == 404
    assert client.get("/fhir/Observation", headers=auth(ward.clinician)).status_code == 422
    client.get("/fhir/Observation", params={"patient": ward.patient.id}, headers=auth(ward.patient_user))
    records = client.get("/audit", params={"patient_id": ward.patient.id}, headers=auth(make_user(Role.admin))).json()
    reads = {(r["actor_id"], r["resource_type"], r["path"]) for r in records if r["action"] == "read"}
    assert (ward.patient_user.id, "assessment", "/fhir/Observation") in reads


def test_fhir_errors_are_operation_outcomes(app, client, auth, ward):
    clinician = auth(ward.clinician)
    unknown = client.get("/fhir/Patient/no-such-patient", headers=clinician)
    assert unknown.status_code == 404
    assert "no-such-patient" in outcome(unknown, "not-found", "not_found").issue[0].diagnostics
    unsigned = client.get(f"/fhir/Patient/{ward.patient.id}")
    assert unsigned.status_code == 401 and unsigned.headers["WWW-Authenticate"] == "Bearer"
    outcome(unsigned, "login", "unauthorized")
    for bad_search in ({}, {"patient": "x" * 61}):
        refused = client.get("/fhir/Observation", params=bad_search, headers=clinician)
        assert refused.status_code == 422
        assert "patient" in outcome(refused, "invalid", "invalid").issue[0].diagnostics
    assert outcome(client.post(f"/fhir/Patient/{ward.patient.id}", headers=clinician), "not-supported",
                   "method_not_allowed")
    assert outcome(client.get("/fhir/Encounter/1", headers=clinician), "not-found", "not_found")

    @app.get("/fhir/forbidden-probe")
    def forbidden_probe():  # a /fhir route that refuses, as a role check does
        raise Forbidden("this needs the role admin")

    forbidden = client.get("/fhir/forbidden-probe", headers=clinician)
    assert forbidden.status_code == 403 and outcome(forbidden, "forbidden", "forbidden")


def test_the_rest_of_the_api_keeps_its_error_shape(client, auth, ward):
    for path in ("/patients/no-such-patient", "/fhirish/Patient/1"):
        refused = client.get(path, headers=auth(ward.clinician))
        assert refused.status_code == 404 and refused.headers["content-type"] == "application/json"
        assert set(refused.json()) == {"error", "code"}
