"""What routes depend on: the settings, a database session, the signed-in user and the caller's context."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session

from platform_api.auth.models import Role, User
from platform_api.auth.security import decode_token
from platform_api.db import session_factory
from platform_api.errors import Forbidden, Unauthorized
from platform_api.settings import Settings, get_settings


async def app_settings() -> Settings:
    """The process's settings. Dependencies that do no I/O are async: FastAPI runs a sync one in a worker
    thread, and each such hop cost more than the route's own Python in the load benchmark."""
    return get_settings()


SettingsDep = Annotated[Settings, Depends(app_settings)]
# paging of every list route; the bound keeps OFFSET inside what both databases take
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]


async def get_session(settings: SettingsDep) -> AsyncIterator[Session]:
    """A request's session. Services commit their own unit of work (so the response is sent only after the
    commit succeeded); what a failing request left uncommitted is rolled back here, in a worker thread since
    that talks to the database (a session with no transaction open closes without I/O)."""
    session = session_factory(settings.database_url)()
    try:
        yield session
    finally:
        if session.in_transaction():
            await run_in_threadpool(_roll_back_and_close, session)
        else:
            session.close()


def _roll_back_and_close(session: Session) -> None:
    session.rollback()
    session.close()


SessionDep = Annotated[Session, Depends(get_session)]
_bearer = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False)


def current_user(session: SessionDep, settings: SettingsDep, token: Annotated[str | None, Depends(_bearer)]) -> User:
    """The active user named by a valid access token."""
    claims = decode_token(settings.secret_key, token, "access") if token else None
    if claims is None:
        raise Unauthorized() if token is None else Unauthorized("the access token is invalid or expired")
    user = session.get(User, claims["sub"])
    if user is None or not user.is_active:
        raise Unauthorized("the access token's user no longer exists or is disabled")
    return user


CurrentUser = Annotated[User, Depends(current_user)]


@dataclass(frozen=True)
class Caller:
    """Who is calling and from where: what authorization and the audit trail need."""

    user: User
    client: str
    method: str
    path: str

    @property
    def role(self) -> Role:
        return self.user.role


async def caller(user: CurrentUser, request: Request) -> Caller:
    client = request.client.host if request.client else "unknown"
    return Caller(user, client, request.method, request.url.path)


CallerDep = Annotated[Caller, Depends(caller)]


def require_roles(*roles: Role) -> Callable[[Caller], Caller]:
    """A dependency that lets only these roles through (403 for the others)."""

    async def check(who: CallerDep) -> Caller:
        if who.role not in roles:
            raise Forbidden(f"this needs the role {' or '.join(r.value for r in roles)}")
        return who

    return check


AdminCaller = Annotated[Caller, Depends(require_roles(Role.admin))]
StaffCaller = Annotated[Caller, Depends(require_roles(Role.admin, Role.clinician, Role.caregiver))]
ClinicianCaller = Annotated[Caller, Depends(require_roles(Role.admin, Role.clinician))]
