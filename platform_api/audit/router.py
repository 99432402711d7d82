from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter

from platform_api.audit import service
from platform_api.audit.schemas import AuditRead
from platform_api.deps import AdminCaller, Limit, Offset, SessionDep

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("", response_model=list[AuditRead])
def list_audit(session: SessionDep, _admin: AdminCaller, patient_id: str | None = None,
               actor_id: str | None = None, since: datetime | None = None,
               limit: Limit = 100,
               offset: Offset = 0) -> list[AuditRead]:
    """Who read or wrote which patient data, when and from where (admins only)."""
    return service.list_records(session, patient_id=patient_id, actor_id=actor_id, since=since, limit=limit,
                                offset=offset)
