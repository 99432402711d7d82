"""What routes depend on: the settings, a database session, the signed-in user and the caller's context, or
Work, which does a route's database work with its caller check in one worker thread."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import OAuth2PasswordBearer
from pydantic import BaseModel
from sqlalchemy import Row, bindparam, select
from sqlalchemy.orm import Session

from platform_api.auth.models import Role, User
from platform_api.auth.security import access_claims
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


def _claims(settings: Settings, token: str | None) -> Mapping[str, object]:
    """The claims of the request's access token; 401 without a valid, unexpired one."""
    claims = access_claims(settings.secret_key, token) if token else None
    if claims is None:
        raise Unauthorized() if token is None else Unauthorized("the access token is invalid or expired")
    return claims


def _active(user: User | Row | None) -> User | Row:
    # the user is read on every request: a deleted or disabled user's tokens stop working at once
    if user is None or not user.is_active:
        raise Unauthorized("the access token's user no longer exists or is disabled")
    return user


def current_user(session: SessionDep, settings: SettingsDep, token: Annotated[str | None, Depends(_bearer)]) -> User:
    """The active user named by a valid access token."""
    return _active(session.get(User, _claims(settings, token)["sub"]))


CurrentUser = Annotated[User, Depends(current_user)]


@dataclass(frozen=True)
class Caller:
    """Who is calling and from where: what authorization and the audit trail need. The user is read only: an
    ORM User, or (routes on Work) the same columns as a row."""

    user: User | Row
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


# ---------------------------------------------------------------------------------------------- one thread


Read = TypeVar("Read", bound=BaseModel)


Sessions = Callable[[], AbstractContextManager[Session]]


async def session_source(settings: SettingsDep) -> Sessions:
    """Where Work gets its session: a new one per call, closed (rolled back when unfinished) at the end of its
    with block. Tests replace it to hand out their session inside a rolled-back transaction."""
    return session_factory(settings.database_url)


@dataclass(frozen=True)
class Work:
    """A route's database work, done in one worker thread: a session is opened, the caller's user row checked (it
    exists and is active), the service run, its result validated into the reply's schema and the session closed,
    all in that thread, as a bare route with one connection would.

    A sync route costs FastAPI a threadpool hop for each sync dependency (current_user) and another to validate the
    reply, and a session dependency with yield costs it an exit stack; the busiest routes (benchmarks/api.py) take
    the one hop their database calls need instead. The token was checked before (in `work`, without I/O).
    """

    sessions: Sessions
    user_id: str
    client: str
    method: str
    path: str

    async def run(self, service: Callable[..., object], read: type[Read], /, **arguments: object) -> Read:
        """`service(session, caller=..., **arguments)` as `read`, in one worker thread."""
        return await run_in_threadpool(self._in_thread, service, read, arguments)

    def _in_thread(self, service: Callable[..., object], read: type[Read], arguments: dict[str, object]) -> Read:
        with self.sessions() as session:
            user = _active(session.execute(_USER, {"user_id": self.user_id}).one_or_none())
            caller = Caller(user, self.client, self.method, self.path)
            return read.model_validate(service(session, caller=caller, **arguments))


# the same SELECT as session.get(User), read as a row: the caller's user is only read (id, role, patient_id)
_USER = select(User.__table__).where(User.__table__.c.id == bindparam("user_id"))


async def work(sessions: Annotated[Sessions, Depends(session_source)], settings: SettingsDep,
               token: Annotated[str | None, Depends(_bearer)], request: Request) -> Work:
    """The request's Work, once its access token is valid (401 otherwise, before any database work)."""
    client = request.client.host if request.client else "unknown"
    return Work(sessions, str(_claims(settings, token)["sub"]), client, request.method, request.url.path)


WorkDep = Annotated[Work, Depends(work)]
