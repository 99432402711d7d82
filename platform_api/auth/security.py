"""Password hashing (argon2), bearer tokens (JWT, HS256) and TOTP codes: pure functions over the settings."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from types import MappingProxyType

import jwt
import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

ALGORITHM = "HS256"
_hasher = PasswordHasher()
# verified against when the email is unknown, so a wrong email costs as long as a wrong password
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def encode_token(secret: str, subject: str, kind: str, lifetime: timedelta, **claims) -> tuple[str, datetime]:
    """A signed token for `subject` of this kind ("access" or "refresh") and its expiry."""
    expires = datetime.now(UTC) + lifetime
    payload = {"sub": subject, "typ": kind, "exp": expires, "iat": datetime.now(UTC), **claims}
    return jwt.encode(payload, secret, algorithm=ALGORITHM), expires


def decode_token(secret: str, token: str, kind: str) -> dict | None:
    """The claims of a valid, unexpired token of this kind; None for anything else."""
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["sub", "exp", "typ"]})
    except jwt.PyJWTError:
        return None
    return claims if claims.get("typ") == kind else None


def access_claims(secret: str, token: str) -> Mapping[str, object] | None:
    """The claims of a valid, unexpired access token (as decode_token gives them), its signature checked once.

    A client sends the same token on every request of its lifetime, so a verified token is remembered (bounded,
    least recently used out first); its expiry is checked again on every call. A token only proves who signed in:
    whether that user may still act is for the caller to check in the database on every request.
    """
    try:
        claims = _verified_access(secret, token)
    except _NotAccessToken:
        return None
    return claims if time.time() < claims["exp"] else None


class _NotAccessToken(Exception):
    pass


@lru_cache(maxsize=4096)
def _verified_access(secret: str, token: str) -> Mapping[str, object]:
    claims = decode_token(secret, token, "access")
    if claims is None:
        raise _NotAccessToken  # not cached: only tokens this service signed take room in the cache
    return MappingProxyType(claims)  # read-only: shared by every request with this token


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(secret: str, email: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name="Coherency")


def verify_totp(secret: str, code: str | None) -> bool:
    # one step of clock drift either way, as authenticator apps expect
    return bool(code) and pyotp.TOTP(secret).verify(code.strip(), valid_window=1)
