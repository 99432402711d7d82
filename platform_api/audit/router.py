from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from platform_api.audit import service
from platform_api.audit.schemas import AuditRead
from platform_api.deps import AdminCaller, SessionDep

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("", response_model=list[AuditRead])
def list_audit(session: SessionDep, _admin: AdminCaller, patient_id: str | None = None,
               actor_id: str | None = None, since: datetime | None = None,
               limit: Annotated[int, Query(ge=1, le=1000)] = 100,
               offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> list[AuditRead]:
    """Who read or wrote which patient data, when and from where (admins only)."""
    return service.list_records(session, patient_id=patient_id, actor_id=actor_id, since=since, limit=limit,
                                offset=offset)
