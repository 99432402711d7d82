"""Scans and assessments: store an upload, have the assessment service assess it, keep what it said.

A scan is committed (status received) before the service is called, so a failed or slow assessment never loses
the upload: the scan is marked failed with the reason and POST /scans/{id}/assess tries again. Access follows the
patient (patients.service.visible_wound); uploads and retries are clinical writes (staff only).
"""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Row, bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from platform_api.assessments import serving_client
from platform_api.assessments.models import Assessment, Scan
from platform_api.assessments.storage import storage_for
from platform_api.assessments.uploads import ScanUpload, photo_format
from platform_api.audit.service import record, record_read
from platform_api.db import new_id, utcnow
from platform_api.errors import Conflict, Invalid, NotFound, Upstream
from platform_api.patients.models import Wound
from platform_api.patients.service import can_see, require_staff, visible_wound
from platform_api.settings import Settings

if TYPE_CHECKING:
    from platform_api.deps import Caller

MEASURED = ("area_cm2", "volume_cm3", "max_depth_mm", "mean_depth_mm", "perimeter_cm", "length_cm", "width_cm",
            "surface_area_cm2")
CLOCK_SKEW = timedelta(minutes=10)  # a device clock this far ahead is tolerated in captured_at
PHOTO_SUFFIX = {"jpeg": "jpg", "png": "png"}
_ENSEMBLE_WEEK = re.compile(r"p_ens_w(\d+)$")


def submit(session: Session, *, caller: Caller, settings: Settings, wound_id: str, upload: ScanUpload) -> Assessment:
    """Store the upload as a new scan of this wound (committed first), then assess it."""
    wound = visible_wound(session, caller=caller, wound_id=wound_id)
    require_staff(caller)
    scan = _new_scan(wound, caller, upload)
    storage = storage_for(settings.storage_url)
    storage.put(scan.scan_key, upload.scan)
    if upload.photo is not None:
        storage.put(scan.photo_key, upload.photo)
    session.add(scan)
    record(session, caller=caller, action="create", resource_type="scan", resource_id=scan.id,
           patient_id=scan.patient_id)
    session.commit()
    return _assess(session, caller=caller, settings=settings, scan=scan, wound=wound)


def _new_scan(wound: Wound, caller: Caller, upload: ScanUpload) -> Scan:
    captured_at = upload.metadata.captured_at or utcnow()
    if captured_at > utcnow() + CLOCK_SKEW:
        raise Invalid("metadata.captured_at lies in the future")
    scan_id = new_id()
    photo_key = None
    if upload.photo is not None:
        photo_key = f"scans/{scan_id}/photo.{PHOTO_SUFFIX[photo_format(upload.photo)]}"
    return Scan(id=scan_id, wound_id=wound.id, patient_id=wound.patient_id, uploaded_by=caller.user.id,
                captured_at=captured_at, scan_key=f"scans/{scan_id}/scan.{upload.scan_format}",
                scan_format=upload.scan_format, scan_bytes=len(upload.scan),
                scan_sha256=hashlib.sha256(upload.scan).hexdigest(), photo_key=photo_key, camera=upload.camera,
                scan_metadata=upload.metadata.model_dump(mode="json", exclude_none=True, exclude={"captured_at"}),
                status="received")


def retry(session: Session, *, caller: Caller, settings: Settings, scan_id: str) -> Assessment:
    """Assess a stored scan again (one that failed, or whose assessment never finished)."""
    scan = visible_scan(session, caller=caller, scan_id=scan_id)
    require_staff(caller)
    if scan.status == "assessed":
        raise Conflict(f"scan {scan.id} is assessed already")
    return _assess(session, caller=caller, settings=settings, scan=scan, wound=session.get(Wound, scan.wound_id))


def _assess(session: Session, *, caller: Caller, settings: Settings, scan: Scan, wound: Wound) -> Assessment:
    # end the open transaction before the service call, which can take minutes: on SQLite a transaction holds
    # the write lock, and on PostgreSQL it would hold a pooled connection idle in transaction
    session.commit()
    storage = storage_for(settings.storage_url)
    inputs = {"scan": storage.get(scan.scan_key), "scan_format": scan.scan_format, "camera": scan.camera,
              "photo": storage.get(scan.photo_key) if scan.photo_key else None,
              "metadata": serving_metadata(wound, scan)}
    try:
        result = serving_client.assess(settings, **inputs)
    except (Upstream, Invalid) as e:
        raise _failed(session, caller=caller, scan=scan, error=e) from e
    assessment = assessment_from(scan, result)
    scan.status, scan.error = "assessed", None
    session.add(assessment)
    record(session, caller=caller, action="create", resource_type="assessment", resource_id=assessment.id,
           patient_id=scan.patient_id)
    try:
        session.commit()
    except IntegrityError as e:  # a concurrent retry of the same scan committed first
        session.rollback()
        raise Conflict(f"scan {scan.id} is assessed already") from e
    return assessment


def _failed(session: Session, *, caller: Caller, scan: Scan, error: Upstream | Invalid) -> Upstream | Invalid:
    """Mark the scan failed with the reason (committed) and return the error for the client, which names the scan."""
    scan.status, scan.error = "failed", error.message
    record(session, caller=caller, action="update", resource_type="scan", resource_id=scan.id,
           patient_id=scan.patient_id)
    session.commit()
    hint = f"POST /scans/{scan.id}/assess to try again" if isinstance(error, Upstream) else "it is kept as failed"
    return type(error)(f"{error.message}; scan {scan.id} is stored, {hint}", headers={"Location": f"/scans/{scan.id}"})


def serving_metadata(wound: Wound, scan: Scan) -> dict:
    """What the assessment service is told about the scan: no patient identifier, the wound only by its
    feature-store key (which the prognosis reads), and only when it has one."""
    given = scan.scan_metadata or {}
    metadata = {"body_site": given.get("body_site") or wound.body_site, "device": given.get("device"),
                "captured_at": scan.captured_at.isoformat()}
    if wound.feature_key:
        metadata["wound_id"] = wound.feature_key
    return {k: v for k, v in metadata.items() if v is not None}


def assessment_from(scan: Scan, result: dict) -> Assessment:
    """The assessment row for the service's reply about this scan."""
    prognosis = result.get("prognosis") if isinstance(result.get("prognosis"), dict) else {}
    tissue = result.get("tissue") if isinstance(result.get("tissue"), dict) else None
    return Assessment(
        id=new_id(), scan_id=scan.id, wound_id=scan.wound_id, patient_id=scan.patient_id,
        captured_at=scan.captured_at, **{name: _number(result.get(name)) for name in MEASURED},
        tissue=None if tissue is None else {str(k): _number(v) for k, v in tissue.items()},
        exudate=(scan.scan_metadata or {}).get("exudate"), p_heal_12w=p_heal_12w(prognosis),
        weeks_to_closure=_number(prognosis.get("weeks_gbm")), flags=_list(result.get("flags")),
        model_versions={str(k): str(v) for k, v in (result.get("models") or {}).items()},
        data_version=None if result.get("data_version") is None else str(result["data_version"])[:80],
        result=result)


def p_heal_12w(prognosis: dict) -> float | None:
    """The ensemble's probability from the newest visit week (p_ens_wN, largest N) when given, else the GBM's."""
    weeks = {int(m.group(1)): _number(v) for k, v in prognosis.items() if (m := _ENSEMBLE_WEEK.match(str(k)))}
    newest = [weeks[w] for w in sorted(weeks, reverse=True) if weeks[w] is not None]
    return newest[0] if newest else _number(prognosis.get("p_gbm"))


def _number(value: object) -> float | None:
    # the reply is JSON from another service: only a real number goes into a numeric column
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _list(value: object) -> list:
    return value if isinstance(value, list) else []


# ------------------------------------------------------------------------------------------------------ reads


def visible_scan(session: Session, *, caller: Caller, scan_id: str) -> Scan:
    """The scan, when the caller may see its patient; NotFound otherwise."""
    scan = session.get(Scan, scan_id)
    if scan is None or not can_see(session, user=caller.user, patient_id=scan.patient_id):
        raise NotFound(f"no scan {scan_id}")
    return scan


def visible_assessment(session: Session, *, caller: Caller, assessment_id: str) -> Assessment:
    """The assessment, when the caller may see its patient; NotFound otherwise."""
    assessment = session.get(Assessment, assessment_id)
    if assessment is None or not can_see(session, user=caller.user, patient_id=assessment.patient_id):
        raise NotFound(f"no assessment {assessment_id}")
    return assessment


def get_scan(session: Session, *, caller: Caller, scan_id: str) -> tuple[Scan, str | None]:
    """The scan and the id of its assessment (None until it is assessed)."""
    scan = visible_scan(session, caller=caller, scan_id=scan_id)
    assessment_id = session.scalar(select(Assessment.id).where(Assessment.scan_id == scan.id))
    record_read(session, caller=caller, resource_type="scan", resource_id=scan.id, patient_id=scan.patient_id)
    return scan, assessment_id


def get_assessment(session: Session, *, caller: Caller, assessment_id: str) -> Row:
    """One assessment (as visible_assessment finds it, read as a row: the busiest read skips the ORM's loading)."""
    assessment = session.execute(_ASSESSMENT, {"assessment_id": assessment_id}).one_or_none()
    if assessment is None or not can_see(session, user=caller.user, patient_id=assessment.patient_id):
        raise NotFound(f"no assessment {assessment_id}")
    record_read(session, caller=caller, resource_type="assessment", resource_id=assessment.id,
                patient_id=assessment.patient_id)
    return assessment


_ASSESSMENT = select(Assessment.__table__).where(Assessment.__table__.c.id == bindparam("assessment_id"))


def wound_assessments(session: Session, *, wound_id: str) -> list[Assessment]:
    """A wound's assessments, oldest capture first (no access check: for callers that made it)."""
    query = select(Assessment).where(Assessment.wound_id == wound_id)
    return list(session.scalars(query.order_by(Assessment.captured_at, Assessment.created_at, Assessment.id)))


def list_assessments(session: Session, *, caller: Caller, wound_id: str) -> list[Assessment]:
    """The wound's assessments, oldest capture first."""
    wound = visible_wound(session, caller=caller, wound_id=wound_id)
    assessments = wound_assessments(session, wound_id=wound.id)
    record_read(session, caller=caller, resource_type="assessment", resource_id=None, patient_id=wound.patient_id)
    return assessments
