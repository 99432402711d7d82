"""FHIR resources for patients and their wound assessments, built with fhir.resources' R4B models so that what we
send validates. fhir.resources 8 ships R5 at its top level and R4B (4.3, the backward-compatible release of R4)
in fhir.resources.R4B; R4 clients read these resources as R4.

Per assessment: the wound size panel (LOINC 72287-6) with length, width, depth (the maximum) and area as
components in UCUM units, plus the volume under a local code in mL; and the wound bed appearance (LOINC 72371-8)
valued with the predominant tissue class, one component per class with its share of the bed in %.
"""

from __future__ import annotations

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient as FhirPatient

from platform_api.assessments.models import Assessment
from platform_api.patients.models import Patient, Wound

FHIR_JSON = "application/fhir+json"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
# our own CodeSystems (what LOINC has no code for), all under this one canonical base (docs/platform-api.md);
# it must stay the same across deployments and releases, or codes already sent would no longer match
CODE_SYSTEM_BASE = "https://coherency.example.org/fhir/CodeSystem"
MEASUREMENT_SYSTEM = f"{CODE_SYSTEM_BASE}/wound-measurement"
TISSUE_SYSTEM = f"{CODE_SYSTEM_BASE}/wound-tissue"
ERROR_SYSTEM = f"{CODE_SYSTEM_BASE}/api-error"  # the API's error codes, in OperationOutcome issues
CATEGORY = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "exam",
                        "display": "Exam"}]}
SIZE_PANEL = ("72287-6", "Wound size panel")
TISSUE_TYPE = ("72371-8", "Appearance of wound base")
# (column, LOINC code, text, scale to the unit, UCUM unit); depth is the maximum depth, LOINC's depth in cm
SIZE_COMPONENTS = (("length_cm", "39126-8", "Length of wound", 1.0, "cm"),
                   ("width_cm", "39125-0", "Width of wound", 1.0, "cm"),
                   ("max_depth_mm", "39127-6", "Depth of wound (maximum)", 0.1, "cm"),
                   ("area_cm2", "89260-4", "Area of wound", 1.0, "cm2"))
KINDS = ("size", "tissue")


def patient_resource(patient: Patient) -> FhirPatient:
    """The patient: name, administrative gender, birth date and the medical record number."""
    identifiers = [] if not patient.mrn else [{"type": {"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}, "value": patient.mrn}]
    return FhirPatient(id=patient.id, identifier=identifiers or None,
                       name=[{"family": patient.family_name, "given": [patient.given_name]}],
                       gender=patient.sex, birthDate=patient.birth_date)


def assessment_observations(assessment: Assessment, wound: Wound) -> list[Observation]:
    """The size panel and the tissue observation of one assessment (each only when it has values)."""
    built = [size_observation(assessment, wound), tissue_observation(assessment, wound)]
    return [observation for observation in built if observation is not None]


def size_observation(assessment: Assessment, wound: Wound) -> Observation | None:
    """LOINC 72287-6 with a component per measured size (None when nothing was measured)."""
    components = [_quantity_component({"system": LOINC, "code": code}, text, getattr(assessment, column) * scale, unit)
                  for column, code, text, scale, unit in SIZE_COMPONENTS if getattr(assessment, column) is not None]
    if assessment.volume_cm3 is not None:  # LOINC has no wound volume; 1 cm3 is 1 mL
        components.append(_quantity_component({"system": MEASUREMENT_SYSTEM, "code": "wound-volume"},
                                              "Volume of wound", assessment.volume_cm3, "mL"))
    if not components:
        return None
    return Observation(**_common(assessment, wound, "size", SIZE_PANEL), component=components)


def tissue_observation(assessment: Assessment, wound: Wound) -> Observation | None:
    """LOINC 72371-8 valued with the predominant tissue class; a component per class with its share in %."""
    shares = {name: share for name, share in (assessment.tissue or {}).items() if share is not None}
    if not shares:
        return None
    top = max(shares, key=shares.get)
    components = [_quantity_component({"system": TISSUE_SYSTEM, "code": name}, f"{name} share of the wound bed",
                                      100.0 * share, "%") for name, share in shares.items()]
    return Observation(**_common(assessment, wound, "tissue", TISSUE_TYPE), component=components,
                       valueCodeableConcept={"coding": [{"system": TISSUE_SYSTEM, "code": top}], "text": top})


def _common(assessment: Assessment, wound: Wound, kind: str, code: tuple[str, str]) -> dict:
    """What both observations of an assessment share: subject, time, body site, method, device, flags."""
    versions = ", ".join(f"{name} v{version}" for name, version in assessment.model_versions.items())
    notes = [{"text": f"{f.get('code')}: {f.get('message')}"} for f in assessment.flags if isinstance(f, dict)]
    return {"id": observation_id(assessment.id, kind), "status": "final", "category": [CATEGORY],
            "code": {"coding": [{"system": LOINC, "code": code[0]}], "text": code[1]},
            "subject": {"reference": f"Patient/{assessment.patient_id}"},
            "effectiveDateTime": assessment.captured_at, "issued": assessment.created_at,
            "bodySite": {"text": wound.body_site}, "method": {"text": "3D wound scan, automated measurement"},
            "device": {"display": versions or "coherency assessment service"}, "note": notes or None}


def _quantity_component(coding: dict, text: str, value: float, unit: str) -> dict:
    return {"code": {"coding": [coding], "text": text},
            "valueQuantity": {"value": round(float(value), 3), "unit": unit, "system": UCUM, "code": unit}}


def observation_id(assessment_id: str, kind: str) -> str:
    return f"{assessment_id}-{kind}"


def parse_observation_id(observation_id: str) -> tuple[str, str] | None:
    """(assessment id, kind) of one of our Observation ids; None for anything else."""
    assessment_id, _, kind = observation_id.rpartition("-")
    return (assessment_id, kind) if assessment_id and kind in KINDS else None


def search_bundle(resources: list, base_url: str, self_url: str) -> Bundle:
    """A searchset Bundle of `resources`, each with its absolute URL under `base_url` (ending in /fhir)."""
    entries = [{"fullUrl": f"{base_url}/{r.get_resource_type()}/{r.id}", "resource": r, "search": {"mode": "match"}}
               for r in resources]
    return Bundle(type="searchset", total=len(resources), link=[{"relation": "self", "url": self_url}],
                  entry=entries or None)
