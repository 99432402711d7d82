"""Payment intents for orders: authorize and capture, with the ledger posted in the same transaction (refunds:
refunds.py).

The provider is an outside system, so no transaction stays open while it is asked. Each step first claims
the intent with a conditional UPDATE and commits (two requests cannot both capture, or refund past what was
captured), then asks the provider, then settles (status, ledger, order) in one transaction, or undoes the
claim when the provider refused. A claim older than the lease (processing, capturing) was left by a request
that died between its commits: the next request for that step takes it over and asks the provider again, under
the same idempotency key, so the intent ends authorized, captured or failed and is never charged twice.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from platform_api.audit.service import record, record_read
from platform_api.commerce import service as commerce
from platform_api.db import new_id, utcnow
from platform_api.errors import Conflict, Invalid, NotFound
from platform_api.patients.service import can_see
from platform_api.payments import ledger
from platform_api.payments.models import IntentStatus, LedgerEntry, PaymentIntent
from platform_api.payments.providers import Provider, stamp

if TYPE_CHECKING:
    from platform_api.deps import Caller

NO_SYNC = {"synchronize_session": False}
S = IntentStatus


def create_intent(session: Session, *, caller: Caller, provider: Provider, order_id: str, payment_method: str,
                  lease: timedelta) -> PaymentIntent:
    """Authorize the order's total (the patient, or staff who can see the patient); 402 when declined. An intent of
    the order left processing past the lease is resumed instead of a new one."""
    order = commerce.order_for_payment(session, caller=caller, order_id=order_id)
    if order.total_minor <= 0:
        raise Invalid(f"order {order.id} has nothing to pay")
    intent = PaymentIntent(id=new_id(), order_id=order.id, patient_id=order.patient_id, created_by=caller.user.id,
                           active_order_id=order.id, provider=provider.name, status=S.processing,
                           amount_minor=order.total_minor, currency=order.currency)
    session.add(intent)
    record(session, caller=caller, action="create", resource_type="payment_intent", resource_id=intent.id,
           patient_id=intent.patient_id)
    try:
        session.commit()
    except IntegrityError as e:
        session.rollback()
        intent = session.scalar(select(PaymentIntent).where(PaymentIntent.active_order_id == order.id))
        if intent is None or not take_over(session, intent.id, S.processing, lease):
            raise Conflict(f"order {order_id} has a payment in progress already; capture it or let it fail") from e
        record(session, caller=caller, action="update", resource_type="payment_intent", resource_id=intent.id,
               patient_id=intent.patient_id)
        session.commit()
    _authorize(session, intent, provider, payment_method)
    return fresh(session, intent)


def _authorize(session: Session, intent: PaymentIntent, provider: Provider, payment_method: str) -> None:
    try:
        ref = provider.authorize(amount_minor=intent.amount_minor, currency=intent.currency,
                                 payment_method=payment_method, reference=intent.id,
                                 idempotency_key=stamp(intent.id, "authorize"))
    except Exception as e:
        # declined or failed: the order is free for another attempt
        session.rollback()
        move(session, intent.id, (S.processing,), status=S.failed, active_order_id=None,
             failure_message=str(getattr(e, "message", type(e).__name__))[:300])
        session.commit()
        raise
    move(session, intent.id, (S.processing,), status=S.requires_capture, provider_ref=ref)
    session.commit()


def capture(session: Session, *, caller: Caller, provider: Provider, intent_id: str,
            lease: timedelta) -> PaymentIntent:
    """Capture an authorized intent and mark its order paid (or finish a capture left unfinished past the lease)."""
    intent = visible_intent(session, caller, intent_id)
    if move(session, intent.id, (S.requires_capture,), status=S.capturing):
        try:
            commerce.mark_paid(session, order_id=intent.order_id)  # claimed with the intent: no cancel slips in
        except Conflict:
            session.rollback()
            raise
    elif not take_over(session, intent.id, S.capturing, lease):  # the dead request marked the order paid
        raise Conflict(f"payment {intent_id} is {fresh(session, intent).status.value}; only an authorized "
                       "payment can be captured")
    record(session, caller=caller, action="update", resource_type="payment_intent", resource_id=intent.id,
           patient_id=intent.patient_id)
    session.commit()
    try:
        provider.capture(provider_ref=intent.provider_ref, amount_minor=intent.amount_minor,
                         idempotency_key=stamp(intent.id, "capture"))
    except Exception:
        session.rollback()
        if move(session, intent.id, (S.capturing,), status=S.requires_capture):
            commerce.mark_unpaid(session, order_id=intent.order_id)
        session.commit()
        raise
    settle_capture(session, intent, (S.capturing,))
    session.commit()
    return fresh(session, intent)


def settle_capture(session: Session, intent: PaymentIntent, from_statuses: tuple[IntentStatus, ...]) -> bool:
    """Mark the intent captured and post the capture, if it is in one of these statuses. No commit."""
    if not move(session, intent.id, from_statuses, status=S.succeeded, captured_minor=intent.amount_minor):
        return False
    ledger.post(session, intent=intent, kind="capture", amount_minor=intent.amount_minor,
                provider_ref=intent.provider_ref)
    return True


def get_intent(session: Session, *, caller: Caller, intent_id: str) -> PaymentIntent:
    """One payment intent."""
    intent = visible_intent(session, caller, intent_id)
    record_read(session, caller=caller, resource_type="payment_intent", resource_id=intent.id,
                patient_id=intent.patient_id)
    return intent


def list_ledger(session: Session, *, caller: Caller, intent_id: str | None, limit: int,
                offset: int) -> list[LedgerEntry]:
    """Ledger rows (admins; the route checks the role)."""
    rows = ledger.entries(session, intent_id=intent_id, limit=limit, offset=offset)
    record_read(session, caller=caller, resource_type="ledger", resource_id=intent_id, patient_id=None)
    return rows


def visible_intent(session: Session, caller: Caller, intent_id: str) -> PaymentIntent:
    """The intent, when the caller may see its patient (404 otherwise)."""
    intent = session.get(PaymentIntent, intent_id)
    if intent is None or not can_see(session, user=caller.user, patient_id=intent.patient_id):
        raise NotFound(f"no payment intent {intent_id}")
    return intent


def move(session: Session, intent_id: str, from_statuses: tuple[IntentStatus, ...], *conditions,
         **values) -> bool:
    """One conditional UPDATE of an intent; whether it applied."""
    query = update(PaymentIntent).where(PaymentIntent.id == intent_id, *conditions)
    if from_statuses:
        query = query.where(PaymentIntent.status.in_(from_statuses))
    return session.execute(query.values(**values, updated_at=utcnow()), execution_options=NO_SYNC).rowcount == 1


def take_over(session: Session, intent_id: str, status: IntentStatus, lease: timedelta) -> bool:
    """Claim an intent left in `status` longer than the lease (one request wins: a conditional UPDATE). No commit."""
    return move(session, intent_id, (status,), PaymentIntent.updated_at <= utcnow() - lease)


def fresh(session: Session, intent: PaymentIntent) -> PaymentIntent:
    session.refresh(intent)
    return intent
