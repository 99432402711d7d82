from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse, Response

from platform_api.assessments import report, service
from platform_api.assessments.schemas import AssessmentRead, ScanRead, TrendRead
from platform_api.assessments.trend import read_trend
from platform_api.assessments.uploads import OPENAPI_BODY, UploadDep
from platform_api.deps import CallerDep, SessionDep, SettingsDep, StaffCaller, WorkDep
from platform_api.patients.service import require_staff, visible_wound

router = APIRouter(tags=["assessments"])


def writable_wound(wound_id: str, session: SessionDep, caller: StaffCaller) -> None:
    """Refuse a wound the caller may not add scans to before its upload is read (a dependency)."""
    visible_wound(session, caller=caller, wound_id=wound_id)
    require_staff(caller)
    session.rollback()  # end the read transaction: the upload may take minutes to arrive


UPLOAD_ERRORS = {413: {"description": "upload too large"}, 415: {"description": "not a PLY/PCD or JPEG/PNG"},
                 502: {"description": "the assessment service failed; the scan is kept for a retry"}}


@router.post("/wounds/{wound_id}/scans", response_model=AssessmentRead, status_code=201, openapi_extra=OPENAPI_BODY,
             dependencies=[Depends(writable_wound)], responses=UPLOAD_ERRORS)
def submit_scan(wound_id: str, session: SessionDep, caller: StaffCaller, settings: SettingsDep,
                upload: UploadDep) -> AssessmentRead:
    """Upload a scan (multipart: scan, photo, camera, metadata) and assess it (staff)."""
    return service.submit(session, caller=caller, settings=settings, wound_id=wound_id, upload=upload)


@router.get("/scans/{scan_id}", response_model=ScanRead)
def get_scan(scan_id: str, session: SessionDep, caller: CallerDep) -> ScanRead:
    """One scan: its files' metadata, status and the error of a failed assessment."""
    scan, assessment_id = service.get_scan(session, caller=caller, scan_id=scan_id)
    return ScanRead.model_validate(scan).model_copy(update={"assessment_id": assessment_id})


@router.post("/scans/{scan_id}/assess", response_model=AssessmentRead, status_code=201)
def assess_scan(scan_id: str, session: SessionDep, caller: CallerDep, settings: SettingsDep) -> AssessmentRead:
    """Assess a stored scan again, after a failure (staff)."""
    return service.retry(session, caller=caller, settings=settings, scan_id=scan_id)


@router.get("/assessments/{assessment_id}", response_model=AssessmentRead)
async def get_assessment(assessment_id: str, work: WorkDep) -> AssessmentRead:
    """One assessment, with the assessment service's whole reply."""
    return await work.run(service.get_assessment, AssessmentRead, assessment_id=assessment_id)


@router.get("/wounds/{wound_id}/assessments", response_model=list[AssessmentRead])
def list_assessments(wound_id: str, session: SessionDep, caller: CallerDep) -> list[AssessmentRead]:
    """The wound's assessments, oldest capture first."""
    return service.list_assessments(session, caller=caller, wound_id=wound_id)


@router.get("/wounds/{wound_id}/trend", response_model=TrendRead)
def wound_trend(wound_id: str, session: SessionDep, caller: CallerDep) -> TrendRead:
    """Area, volume and depth over time, the area reduction from the baseline and at week 4."""
    return read_trend(session, caller=caller, wound_id=wound_id)


@router.get("/assessments/{assessment_id}/report.html", response_class=HTMLResponse)
def report_html(assessment_id: str, session: SessionDep, caller: CallerDep, settings: SettingsDep) -> HTMLResponse:
    """The assessment report as an HTML page (images inline)."""
    data = report.report_data(session, caller=caller, settings=settings, assessment_id=assessment_id)
    return HTMLResponse(report.html_report(data))


@router.get("/assessments/{assessment_id}/report.pdf", response_class=Response,
            responses={200: {"content": {"application/pdf": {}}}})
def report_pdf(assessment_id: str, session: SessionDep, caller: CallerDep, settings: SettingsDep) -> Response:
    """The assessment report as a one-page PDF."""
    data = report.report_data(session, caller=caller, settings=settings, assessment_id=assessment_id)
    return Response(report.pdf_report(data), media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="assessment-{data.assessment.id}.pdf"'})
