"""Idempotency-Key on every mutating payment call: the first request with a key runs and stores its response;
a retry with the same key and request gets that response again without running; the same key with another
request is refused (422); a retry while the first still runs waits for it (bounded) and then replays, or gets
409. The unique constraint on (user, key) decides which request is the first.

Stored are successes and the provider's declines. A request refused before it changed anything (not found,
conflict, invalid) or one the provider failed gives its key up, as Stripe does: the retry runs again.

A key is remembered for settings.idempotency_ttl_hours (24 h, as Stripe's): after that it is new again. Expired
records are ignored whether purged yet or not, and purged as keys are claimed, a bounded batch each time (no
request pays for a backlog, no cron job is needed). A key held longer than settings.payment_lease_s by a request
that has not finished belongs to a request that died (the process crashed between two commits): a retry takes it
over and runs the work again, which the services make safe (they resume what the dead request left, and every
provider call carries an idempotency key of its own). Only the request holding the key stores its answer.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, NamedTuple

from fastapi import Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from platform_api.db import new_id, utcnow
from platform_api.errors import Conflict, Invalid, error_body
from platform_api.payments.models import IdempotencyRecord
from platform_api.payments.providers import PaymentDeclined

if TYPE_CHECKING:
    from platform_api.deps import Caller
    from platform_api.settings import Settings

WAIT_S = 10.0  # how long a retry waits for the first request with its key
POLL_S = 0.05
PURGE_BATCH = 100  # expired records deleted per claimed key
NO_SYNC = {"synchronize_session": False}

IdempotencyKey = Annotated[str, Header(alias="Idempotency-Key", min_length=1, max_length=255,
                                       description="a unique key per operation (a UUID); a retry sends it again")]


class Stored(NamedTuple):
    status_code: int
    response_body: dict


class Held(NamedTuple):
    record_id: str  # names this use of the key: the same for a retry that takes it over, new once it expired
    locked_at: datetime


class Terms(NamedTuple):
    ttl: timedelta  # how long a key is remembered
    lease: timedelta  # how long an unfinished request keeps its key from retries

    @classmethod
    def of(cls, settings: Settings) -> Terms:
        return cls(timedelta(hours=settings.idempotency_ttl_hours), timedelta(seconds=settings.payment_lease_s))


class KeyReused(Invalid):
    code = "idempotency_key_reused"


class InProgress(Conflict):
    code = "idempotency_in_progress"


def once(session: Session, *, caller: Caller, settings: Settings, key: str, request: BaseModel | None,
         status: int, work: Callable[[str], BaseModel]) -> JSONResponse:
    """Run `work` once per (caller, key) and answer every request with that key with its stored response.
    `work` gets the id of the key's record, which names this use of the key (Held.record_id)."""
    claimed = _claim(session, caller.user.id, key, _fingerprint(caller, request), Terms.of(settings))
    if isinstance(claimed, Stored):
        return JSONResponse(claimed.response_body, status_code=claimed.status_code,
                            headers={"Idempotent-Replayed": "true"})
    held = (IdempotencyRecord.id == claimed.record_id, IdempotencyRecord.locked_at == claimed.locked_at,
            IdempotencyRecord.status_code.is_(None))
    try:
        code, body = status, work(claimed.record_id).model_dump(mode="json")
    except PaymentDeclined as e:  # the provider's answer: a retry must not ask again
        code, body = e.status, error_body(e.message, e.code)
    except Exception:
        # refused before anything changed (404, 409, 422), or the provider failed: a retry may run again
        session.rollback()
        _delete(session, *held)
        raise
    session.execute(update(IdempotencyRecord).where(*held)
                    .values(status_code=code, response_body=body, completed_at=utcnow()), execution_options=NO_SYNC)
    session.commit()
    return JSONResponse(body, status_code=code)


def _fingerprint(caller: Caller, request: BaseModel | None) -> str:
    body = request.model_dump(mode="json") if request is not None else None
    text = json.dumps({"method": caller.method, "path": caller.path, "body": body}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _claim(session: Session, user_id: str, key: str, fingerprint: str, terms: Terms) -> Stored | Held:
    """The finished first request's response, or the key as this request holds it (then it runs)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        now, record_id = utcnow(), new_id()
        if _insert(session, IdempotencyRecord(id=record_id, user_id=user_id, key=key, request_hash=fingerprint,
                                              created_at=now, locked_at=now), now - terms.ttl):
            return Held(record_id, now)
        waited = _wait(session, user_id, key, fingerprint, terms, deadline)
        if waited is not None:
            return waited
        # None: the key was given up or had expired; try to be the first again


def _insert(session: Session, record: IdempotencyRecord, expired_before: datetime) -> bool:
    try:
        with session.begin_nested():
            session.add(record)
    except IntegrityError:
        session.rollback()
        return False
    purge_expired(session, expired_before)
    session.commit()
    return True


def _wait(session: Session, user_id: str, key: str, fingerprint: str, terms: Terms,
          deadline: float) -> Stored | Held | None:
    """Wait for the request holding the key: its response; the key, taken over from a dead request; or None."""
    this_key = (IdempotencyRecord.user_id == user_id, IdempotencyRecord.key == key)
    query = select(IdempotencyRecord.id, IdempotencyRecord.request_hash, IdempotencyRecord.status_code,
                   IdempotencyRecord.response_body, IdempotencyRecord.created_at,
                   IdempotencyRecord.locked_at).where(*this_key)
    while True:
        row = session.execute(query).first()
        session.rollback()  # ends the snapshot (SQLite) and frees the connection while waiting
        now = utcnow()
        if row is None:
            return None
        if row.created_at <= now - terms.ttl:  # expired: the key is new again
            _delete(session, *this_key, IdempotencyRecord.created_at <= now - terms.ttl)
            return None
        if row.request_hash != fingerprint:
            raise KeyReused("this Idempotency-Key was used for a different request; use a new key")
        if row.status_code is not None:
            return Stored(row.status_code, row.response_body)
        stale_before = now - terms.lease
        if (row.locked_at or row.created_at) <= stale_before and _take_over(session, row.id, now, stale_before):
            return Held(row.id, now)
        if time.monotonic() > deadline:
            raise InProgress("a request with this Idempotency-Key is still running; retry later",
                             headers={"Retry-After": "1"})
        time.sleep(POLL_S)


def _take_over(session: Session, record_id: str, now: datetime, stale_before: datetime) -> bool:
    """Take an unfinished key whose holder has had it past the lease (one retry wins: a conditional UPDATE)."""
    stale = or_(IdempotencyRecord.locked_at <= stale_before,
                and_(IdempotencyRecord.locked_at.is_(None), IdempotencyRecord.created_at <= stale_before))
    query = update(IdempotencyRecord).where(IdempotencyRecord.id == record_id, IdempotencyRecord.status_code.is_(None),
                                            stale)
    taken = session.execute(query.values(locked_at=now), execution_options=NO_SYNC).rowcount == 1
    session.commit()
    return taken


def purge_expired(session: Session, expired_before: datetime) -> int:
    """Delete up to PURGE_BATCH records created before `expired_before` (no commit); how many. Rows another
    transaction is deleting are skipped (PostgreSQL), so concurrent purges never wait on each other."""
    batch = (select(IdempotencyRecord.id).where(IdempotencyRecord.created_at <= expired_before)
             .order_by(IdempotencyRecord.created_at).limit(PURGE_BATCH).with_for_update(skip_locked=True))
    return session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id.in_(batch)),
                           execution_options=NO_SYNC).rowcount


def _delete(session: Session, *conditions) -> None:
    session.execute(delete(IdempotencyRecord).where(*conditions), execution_options=NO_SYNC)
    session.commit()
