"""Users, sign-in, token refresh and the TOTP second factor."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from platform_api.auth import security
from platform_api.auth.models import STAFF, RefreshToken, Role, User
from platform_api.auth.schemas import TokenRead
from platform_api.db import new_id, utcnow
from platform_api.errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized
from platform_api.settings import Settings


def create(session: Session, *, email: str, password: str, role: Role, patient_id: str | None = None,
           display_name: str = "") -> User:
    """A new user; a patient's login must name its patient record, staff must not."""
    from platform_api.patients.models import Patient

    if (role == Role.patient) != (patient_id is not None):
        raise Invalid("a patient user needs patient_id, and only a patient user may have one")
    if patient_id is not None and session.get(Patient, patient_id) is None:
        raise NotFound(f"no patient {patient_id}")
    user = User(email=email.lower(), password_hash=security.hash_password(password), role=role,
                patient_id=patient_id, display_name=display_name)
    session.add(user)
    try:
        session.commit()
    except IntegrityError as e:
        session.rollback()
        raise Conflict(f"a user with the email {email} exists already") from e
    return user


def get(session: Session, *, user_id: str) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user {user_id}")
    return user


def list_users(session: Session, *, role: Role | None = None) -> list[User]:
    query = select(User).order_by(User.email)
    return list(session.scalars(query if role is None else query.where(User.role == role)))


def sign_in(session: Session, *, email: str, password: str, totp_code: str | None, settings: Settings) -> TokenRead:
    """Tokens for a correct email and password (and TOTP code, when the user enabled it)."""
    user = session.scalar(select(User).where(User.email == email.lower()))
    if not security.verify_password(password, user.password_hash if user else None) or not user.is_active:
        raise Unauthorized("wrong email or password")
    if user.totp_enabled and not security.verify_totp(user.totp_secret, totp_code):
        raise Unauthorized("this account needs its current authenticator code in 'totp_code'")
    return _issue(session, user, settings)


def refresh(session: Session, *, token: str, settings: Settings) -> TokenRead:
    """New tokens for an unused, unexpired refresh token, which is revoked (a stolen one works once)."""
    claims = security.decode_token(settings.secret_key, token, "refresh")
    stored = session.get(RefreshToken, claims["jti"]) if claims and "jti" in claims else None
    if stored is None or stored.revoked or stored.expires_at < utcnow():
        raise Unauthorized("the refresh token is invalid, used or expired; sign in again")
    stored.revoked = True
    user = session.get(User, stored.user_id)
    if user is None or not user.is_active:
        raise Unauthorized("the refresh token's user no longer exists or is disabled")
    return _issue(session, user, settings)


def _issue(session: Session, user: User, settings: Settings) -> TokenRead:
    lifetime = timedelta(minutes=settings.access_token_minutes)
    access, _ = security.encode_token(settings.secret_key, user.id, "access", lifetime, role=user.role.value)
    jti = new_id()
    refresh_token, expires = security.encode_token(settings.secret_key, user.id, "refresh",
                                                   timedelta(days=settings.refresh_token_days), jti=jti)
    session.add(RefreshToken(id=jti, user_id=user.id, expires_at=expires))
    session.commit()
    return TokenRead(access_token=access, refresh_token=refresh_token, expires_in=int(lifetime.total_seconds()))


def start_totp(session: Session, *, user: User) -> tuple[str, str]:
    """A new TOTP secret for a staff user (not active until confirmed with a code) and its otpauth URI."""
    if user.role not in STAFF:
        raise Forbidden("the second factor is for staff accounts")
    user.totp_secret, user.totp_enabled = security.new_totp_secret(), False
    session.commit()
    return user.totp_secret, security.totp_uri(user.totp_secret, user.email)


def confirm_totp(session: Session, *, user: User, code: str) -> User:
    """Turn the second factor on once the user proves their authenticator has the secret."""
    if not user.totp_secret:
        raise Conflict("start with POST /auth/totp/setup")
    if not security.verify_totp(user.totp_secret, code):
        raise Invalid("the code does not match; check the authenticator's clock")
    user.totp_enabled = True
    session.commit()
    return user
