"""Idempotency-Key on every mutating payment call: the first request with a key runs and stores its response;
a retry with the same key and request gets that response again without running; the same key with another
request is refused (422); a retry while the first still runs waits for it (bounded) and then replays, or gets
409. The unique constraint on (user, key) decides which request is the first.

Stored are successes and the provider's declines. A request refused before it changed anything (not found,
conflict, invalid) or one the provider failed gives its key up, as Stripe does: the retry runs again.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, NamedTuple

from fastapi import Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from platform_api.db import utcnow
from platform_api.errors import Conflict, Invalid, error_body
from platform_api.payments.models import IdempotencyRecord
from platform_api.payments.providers import PaymentDeclined

if TYPE_CHECKING:
    from platform_api.deps import Caller

WAIT_S = 10.0  # how long a retry waits for the first request with its key
POLL_S = 0.05
NO_SYNC = {"synchronize_session": False}

IdempotencyKey = Annotated[str, Header(alias="Idempotency-Key", min_length=1, max_length=255,
                                       description="a unique key per operation (a UUID); a retry sends it again")]


class Stored(NamedTuple):
    status_code: int
    response_body: dict


class KeyReused(Invalid):
    code = "idempotency_key_reused"


class InProgress(Conflict):
    code = "idempotency_in_progress"


def once(session: Session, *, caller: Caller, key: str, request: BaseModel | None, status: int,
         work: Callable[[], BaseModel]) -> JSONResponse:
    """Run `work` once per (caller, key) and answer every request with that key with its stored response."""
    fingerprint = _fingerprint(caller, request)
    stored = _claim(session, caller.user.id, key, fingerprint)
    if stored is not None:
        return JSONResponse(stored.response_body, status_code=stored.status_code,
                            headers={"Idempotent-Replayed": "true"})
    try:
        code, body = status, work().model_dump(mode="json")
    except PaymentDeclined as e:  # the provider's answer: a retry must not ask again
        code, body = e.status, error_body(e.message, e.code)
    except Exception:
        # refused before anything changed (404, 409, 422), or the provider failed: a retry may run again
        _release(session, caller.user.id, key)
        raise
    session.execute(update(IdempotencyRecord).where(IdempotencyRecord.user_id == caller.user.id,
                                                    IdempotencyRecord.key == key)
                    .values(status_code=code, response_body=body, completed_at=utcnow()), execution_options=NO_SYNC)
    session.commit()
    return JSONResponse(body, status_code=code)


def _fingerprint(caller: Caller, request: BaseModel | None) -> str:
    body = request.model_dump(mode="json") if request is not None else None
    text = json.dumps({"method": caller.method, "path": caller.path, "body": body}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _claim(session: Session, user_id: str, key: str, fingerprint: str) -> Stored | None:
    """None when this request is the first with the key (it then runs); else the finished first's response."""
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            with session.begin_nested():
                session.add(IdempotencyRecord(user_id=user_id, key=key, request_hash=fingerprint))
            session.commit()
            return None
        except IntegrityError:
            session.rollback()
        stored = _finished(session, user_id, key, fingerprint, deadline)
        if stored is not None:
            return stored
        # None: the first request failed and gave its key up; try to be the first again


def _finished(session: Session, user_id: str, key: str, fingerprint: str, deadline: float) -> Stored | None:
    query = select(IdempotencyRecord.request_hash, IdempotencyRecord.status_code,
                   IdempotencyRecord.response_body).where(IdempotencyRecord.user_id == user_id,
                                                          IdempotencyRecord.key == key)
    while True:
        row = session.execute(query).first()
        session.rollback()  # ends the snapshot (SQLite) and frees the connection while waiting
        if row is None:
            return None
        if row.request_hash != fingerprint:
            raise KeyReused("this Idempotency-Key was used for a different request; use a new key")
        if row.status_code is not None:
            return Stored(row.status_code, row.response_body)
        if time.monotonic() > deadline:
            raise InProgress("a request with this Idempotency-Key is still running; retry later",
                             headers={"Retry-After": "1"})
        time.sleep(POLL_S)


def _release(session: Session, user_id: str, key: str) -> None:
    session.rollback()
    session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.user_id == user_id,
                                                    IdempotencyRecord.key == key,
                                                    IdempotencyRecord.status_code.is_(None)),
                    execution_options=NO_SYNC)
    session.commit()
