"""Refunds: ours (asked for through the API) and those made at the provider (its dashboard), learnt from webhooks.

Money moves with a refund's status, each move once, whoever reports it first (our call's answer or a webhook):
a conditional UPDATE of the status decides who applies it.

    requested -> pending               nothing yet: the amount stays reserved (the intent's refunding_minor)
    requested | pending -> succeeded   reserved -> refunded, a refund posting; a full refund marks the intent and
                                       its order refunded
    requested | pending -> failed      the reservation is released
    succeeded -> failed                reversed: refunded -> captured again, a refund_reversal posting; a refunded
                                       intent and its order are paid again
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from platform_api.audit.service import record
from platform_api.commerce import service as commerce
from platform_api.db import new_id, utcnow
from platform_api.errors import Conflict, Invalid
from platform_api.payments import ledger
from platform_api.payments.models import IntentStatus, PaymentIntent, Refund, RefundStatus
from platform_api.payments.providers import Provider, stamp
from platform_api.payments.service import fresh, move, visible_intent

if TYPE_CHECKING:
    from platform_api.deps import Caller

log = logging.getLogger(__name__)
NO_SYNC = {"synchronize_session": False}
R, S = RefundStatus, IntentStatus


def refund(session: Session, *, caller: Caller, provider: Provider, intent_id: str, amount_minor: int,
           operation: str) -> PaymentIntent:
    """Give back part or all of a captured payment (never more than captured minus refunded and reserved).

    `operation` names this use of the Idempotency-Key: a retry that took the key over from a dead request
    finds the refund that request left and asks the provider again under the same key."""
    intent = visible_intent(session, caller, intent_id)
    request_key = stamp(intent.id, f"refund-{operation}")
    claimed = _reserve(session, intent, amount_minor, request_key)
    if claimed is None:  # the dead request got its answer already
        return fresh(session, intent)
    record(session, caller=caller, action="update", resource_type="payment_intent", resource_id=intent.id,
           patient_id=intent.patient_id)
    session.commit()
    try:
        answer = provider.refund(provider_ref=intent.provider_ref, amount_minor=amount_minor,
                                 idempotency_key=request_key, reference=claimed.id)
    except Exception:
        session.rollback()
        _withdraw(session, claimed)
        session.commit()
        raise
    try:
        with session.begin_nested():
            advance(session, claimed, answer.status, provider_ref=answer.ref)
    except IntegrityError:  # an event that did not name our refund came first and booked it as the provider's own
        _withdraw(session, claimed)
    session.commit()
    return fresh(session, intent)


def _reserve(session: Session, intent: PaymentIntent, amount_minor: int, request_key: str) -> Refund | None:
    """A new refund with its amount reserved, or the one a dead request left requested; None when that one has
    its answer already. No commit."""
    left = session.scalar(select(Refund).where(Refund.request_key == request_key))
    if left is not None:
        return left if left.status == R.requested else None
    fits = (PaymentIntent.refunded_minor + PaymentIntent.refunding_minor + amount_minor
            <= PaymentIntent.captured_minor)
    if not move(session, intent.id, (S.succeeded,), fits, refunding_minor=PaymentIntent.refunding_minor + amount_minor):
        _refusal(fresh(session, intent), amount_minor)
    claimed = Refund(id=new_id(), intent_id=intent.id, amount_minor=amount_minor, currency=intent.currency,
                     status=R.requested, request_key=request_key)
    session.add(claimed)
    return claimed


def _refusal(intent: PaymentIntent, amount_minor: int) -> None:
    if intent.status != S.succeeded:
        raise Conflict(f"payment {intent.id} is {intent.status.value}; only a captured payment can be refunded")
    left = intent.captured_minor - intent.refunded_minor - intent.refunding_minor
    raise Invalid(f"amount_minor {amount_minor} is more than the {left} {intent.currency} minor units "
                  "that can still be refunded")


def _withdraw(session: Session, claimed: Refund) -> None:
    """The provider refused or failed: forget the requested refund and release its reservation. No commit."""
    gone = session.execute(delete(Refund).where(Refund.id == claimed.id, Refund.status == R.requested),
                           execution_options=NO_SYNC).rowcount == 1
    if gone:
        move(session, claimed.intent_id, (), refunding_minor=PaymentIntent.refunding_minor - claimed.amount_minor)


def advance(session: Session, refund: Refund, status: RefundStatus, *, provider_ref: str | None = None,
            failure_message: str | None = None) -> bool:
    """Move the refund to `status` and apply what that means to its intent, the ledger and the order, unless it
    is there already or cannot go there (see the module's table); whether anything changed. No commit."""
    intent = session.get(PaymentIntent, refund.intent_id)
    if status == R.pending:
        return _set(session, refund, (R.requested,), R.pending, provider_ref)
    if status == R.succeeded:
        if not _set(session, refund, (R.requested, R.pending), R.succeeded, provider_ref):
            return False
        _settle(session, intent, refund.amount_minor, provider_ref or refund.provider_ref)
        return True
    if _set(session, refund, (R.requested, R.pending), R.failed, provider_ref, failure_message):
        move(session, intent.id, (), refunding_minor=PaymentIntent.refunding_minor - refund.amount_minor)
        return True
    if _set(session, refund, (R.succeeded,), R.failed, provider_ref, failure_message):
        _reverse(session, intent, refund.amount_minor, provider_ref or refund.provider_ref)
        return True
    return False


def _set(session: Session, refund: Refund, from_statuses: tuple[RefundStatus, ...], status: RefundStatus,
         provider_ref: str | None, failure_message: str | None = None) -> bool:
    values = {"status": status, "updated_at": utcnow(),
              "provider_ref": func.coalesce(Refund.provider_ref, provider_ref)}
    if failure_message:
        values["failure_message"] = failure_message[:300]
    return session.execute(update(Refund).where(Refund.id == refund.id, Refund.status.in_(from_statuses))
                           .values(**values), execution_options=NO_SYNC).rowcount == 1


def _settle(session: Session, intent: PaymentIntent, amount_minor: int, provider_ref: str | None) -> None:
    move(session, intent.id, (), refunding_minor=PaymentIntent.refunding_minor - amount_minor,
         refunded_minor=PaymentIntent.refunded_minor + amount_minor)
    ledger.post(session, intent=intent, kind="refund", amount_minor=amount_minor, provider_ref=provider_ref)
    if move(session, intent.id, (S.succeeded,), PaymentIntent.refunded_minor == PaymentIntent.captured_minor,
            status=S.refunded):
        _order(session, commerce.mark_refunded, intent, "refunded")


def _reverse(session: Session, intent: PaymentIntent, amount_minor: int, provider_ref: str | None) -> None:
    move(session, intent.id, (), refunded_minor=PaymentIntent.refunded_minor - amount_minor)
    ledger.post(session, intent=intent, kind="refund_reversal", amount_minor=amount_minor, provider_ref=provider_ref)
    if move(session, intent.id, (S.refunded,), status=S.succeeded):
        _order(session, commerce.mark_refund_reversed, intent, "paid again")


def _order(session: Session, change, intent: PaymentIntent, what: str) -> None:
    try:
        with session.begin_nested():
            change(session, order_id=intent.order_id)
    except Conflict:  # the provider's word stands for the money; the order's state is for people to look at
        log.warning("payment intent %s: its order could not be marked %s", intent.id, what)


def learn(session: Session, *, intent: PaymentIntent, provider_ref: str, amount_minor: int,
          status: RefundStatus) -> None:
    """A refund made at the provider, not through us: record it and apply its status, once. No commit."""
    if status == R.failed:
        return  # it never moved money, and we never counted it
    try:
        with session.begin_nested():
            fits = (PaymentIntent.refunded_minor + PaymentIntent.refunding_minor + amount_minor
                    <= PaymentIntent.captured_minor)
            if not move(session, intent.id, (S.succeeded,), fits,
                        refunding_minor=PaymentIntent.refunding_minor + amount_minor):
                log.warning("payment intent %s: a provider refund of %d does not fit what was captured; not applied",
                            intent.id, amount_minor)
                return
            learnt = Refund(id=new_id(), intent_id=intent.id, amount_minor=amount_minor, currency=intent.currency,
                            status=R.requested, provider_ref=provider_ref)
            session.add(learnt)
            session.flush()
    except IntegrityError:  # another event about the same refund recorded it first
        learnt = session.scalar(select(Refund).where(Refund.provider_ref == provider_ref))
    advance(session, learnt, status, provider_ref=provider_ref)
