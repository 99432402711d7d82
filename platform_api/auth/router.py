from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.security import OAuth2PasswordRequestForm

from platform_api.auth import ratelimit, service
from platform_api.auth.models import Role
from platform_api.auth.schemas import RefreshRequest, TokenRead, TotpCode, TotpSetupRead, UserCreate, UserRead
from platform_api.deps import AdminCaller, CurrentUser, SessionDep, SettingsDep

router = APIRouter(tags=["auth"])


@router.post("/auth/token", response_model=TokenRead)
def token(request: Request, session: SessionDep, settings: SettingsDep,
          form: Annotated[OAuth2PasswordRequestForm, Depends()],
          totp_code: Annotated[str | None, Form(max_length=8)] = None) -> TokenRead:
    """OAuth2 password flow: email as username; staff with a second factor add totp_code."""
    client = request.client.host if request.client else "unknown"
    ratelimit.check(ratelimit.counter_for(settings.redis_url), f"token:{client}", settings.token_rate_limit)
    return service.sign_in(session, email=form.username, password=form.password, totp_code=totp_code,
                           settings=settings)


@router.post("/auth/refresh", response_model=TokenRead)
def refresh(body: RefreshRequest, session: SessionDep, settings: SettingsDep) -> TokenRead:
    """Trade a refresh token for new tokens (each refresh token works once)."""
    return service.refresh(session, token=body.refresh_token, settings=settings)


@router.get("/auth/me", response_model=UserRead)
def me(user: CurrentUser) -> UserRead:
    """The signed-in user."""
    return user


@router.post("/auth/totp/setup", response_model=TotpSetupRead)
def totp_setup(user: CurrentUser, session: SessionDep) -> TotpSetupRead:
    """Start the TOTP second factor (staff): add the secret to an authenticator, then confirm a code."""
    secret, uri = service.start_totp(session, user=user)
    return TotpSetupRead(secret=secret, otpauth_uri=uri)


@router.post("/auth/totp/enable", response_model=UserRead)
def totp_enable(body: TotpCode, user: CurrentUser, session: SessionDep) -> UserRead:
    """Confirm the authenticator's code; from then on sign-in needs one."""
    return service.confirm_totp(session, user=user, code=body.code)


@router.post("/users", response_model=UserRead, status_code=201)
def create_user(body: UserCreate, session: SessionDep, _admin: AdminCaller) -> UserRead:
    """Create a user of any role (admins only)."""
    return service.create(session, **body.model_dump())


@router.get("/users", response_model=list[UserRead])
def list_users(session: SessionDep, _admin: AdminCaller, role: Role | None = None) -> list[UserRead]:
    """Every user, or those of one role (admins only)."""
    return service.list_users(session, role=role)
