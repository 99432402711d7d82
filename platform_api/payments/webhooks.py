"""Provider webhooks: the signature is checked before anything is read, each event id is processed once (a
unique constraint), a payment intent event moves our intent as the provider says, and a refund event moves the
refund (refunds.py: each change of money once, so two events about one refund, or a replay, change nothing
twice). Both providers send Stripe's event shapes: refund.created, refund.updated, refund.failed and
charge.refund.updated carry a refund object (id, amount, currency, status, payment_intent, metadata); charge.refunded
carries the charge (payment_intent), with its refunds under refunds.data when the API version lists them.

Sandbox signature: "Coherency-Signature: t=UNIX_TIME,v1=HEX", HEX the HMAC-SHA256 of "t." + body under the
webhook secret (Stripe's scheme, so Stripe's tools sign it too). Stripe: Stripe's own verifier. Both refuse a
timestamp more than TOLERANCE_S away, so a captured request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from platform_api.commerce import service as commerce
from platform_api.errors import Conflict, DomainError
from platform_api.payments import refunds
from platform_api.payments.models import IntentStatus, PaymentIntent, Refund, WebhookEvent
from platform_api.payments.providers import STRIPE_REFUND_STATUS
from platform_api.payments.service import move, settle_capture

log = logging.getLogger(__name__)
TOLERANCE_S = 300
SIGNATURE_HEADERS = {"sandbox": "Coherency-Signature", "stripe": "Stripe-Signature"}
S = IntentStatus


class BadSignature(DomainError):
    status, code = 400, "bad_signature"


def sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """The sandbox's signature header for this body (what the sandbox sends, and what tests sign with)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(provider: str, body: bytes, header: str | None, secret: str) -> dict:
    """The event in a correctly signed, fresh body; BadSignature otherwise."""
    if provider == "stripe":
        _verify_stripe(body, header, secret)
    else:
        _verify_sandbox(body, header, secret, time.time())
    try:
        event = json.loads(body)
    except (UnicodeDecodeError, ValueError) as e:
        raise DomainError("the webhook body is not JSON") from e
    if not (isinstance(event, dict) and isinstance(event.get("id"), str) and isinstance(event.get("type"), str)
            and 0 < len(event["id"]) <= 255 and len(event["type"]) <= 100):
        raise DomainError("the webhook body is not an event (an object with string id and type)")
    return event


def _verify_sandbox(body: bytes, header: str | None, secret: str, now: float) -> None:
    if not header:
        raise BadSignature("the Coherency-Signature header is missing")
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        name, _, value = item.partition("=")
        parts.setdefault(name.strip(), []).append(value.strip())
    try:
        timestamp = int(parts["t"][0])
    except (KeyError, ValueError) as e:
        raise BadSignature("the signature header has no timestamp (t=...)") from e
    expected = sign(body, secret, timestamp).split("v1=", 1)[1]
    if not any(hmac.compare_digest(expected, given) for given in parts.get("v1", [])):
        raise BadSignature("the webhook signature does not match")
    if abs(now - timestamp) > TOLERANCE_S:
        raise BadSignature(f"the webhook signature is stale (more than {TOLERANCE_S} s old or ahead)")


def _verify_stripe(body: bytes, header: str | None, secret: str) -> None:
    import stripe

    try:
        stripe.WebhookSignature.verify_header(body, header, secret, tolerance=TOLERANCE_S)
    except (stripe.SignatureVerificationError, UnicodeDecodeError) as e:
        raise BadSignature(f"the Stripe signature does not verify: {getattr(e, 'user_message', None) or e}") from e


def receive(session: Session, *, provider: str, event: dict) -> bool:
    """Process a verified event once; False when it was processed before (a redelivery)."""
    data = event.get("data") if isinstance(event.get("data"), dict) else {}
    payload = data.get("object") if isinstance(data.get("object"), dict) else {}
    intent = _intent_of(session, provider, event["type"], payload)
    try:
        with session.begin_nested():
            session.add(WebhookEvent(provider=provider, event_id=event["id"], type=event["type"],
                                     intent_id=intent.id if intent else None))
    except IntegrityError:
        session.rollback()
        return False
    if intent is not None and event["type"] in HANDLERS:
        HANDLERS[event["type"]](session, intent, payload)
    session.commit()
    return True


def _intent_of(session: Session, provider: str, kind: str, payload: dict) -> PaymentIntent | None:
    # a payment_intent event carries the intent itself; refund, charge and dispute events name it
    ref = payload.get("id") if kind.startswith("payment_intent.") else payload.get("payment_intent")
    ref = ref.get("id") if isinstance(ref, dict) else ref  # Stripe expands it into the object on request
    if not isinstance(ref, str) or not ref:
        return None
    return session.scalar(select(PaymentIntent).where(PaymentIntent.provider == provider,
                                                      PaymentIntent.provider_ref == ref))


def _succeeded(session: Session, intent: PaymentIntent, _payload: dict) -> None:
    # captured outside our capture call (the provider's dashboard, or our call died after the provider took it)
    if settle_capture(session, intent, (S.requires_capture,)):
        try:
            commerce.mark_paid(session, order_id=intent.order_id)
        except Conflict:
            log.warning("payment intent %s was captured but its order is no longer awaiting payment", intent.id)
    else:
        settle_capture(session, intent, (S.capturing,))  # our capture claimed the order already


def _failed(session: Session, intent: PaymentIntent, payload: dict) -> None:
    error = payload.get("last_payment_error") if isinstance(payload.get("last_payment_error"), dict) else {}
    move(session, intent.id, (S.processing, S.requires_capture), status=S.failed, active_order_id=None,
          failure_message=str(error.get("message") or "the provider reported the payment failed")[:300])


def _canceled(session: Session, intent: PaymentIntent, _payload: dict) -> None:
    move(session, intent.id, (S.processing, S.requires_capture), status=S.canceled, active_order_id=None)


def _refund_changed(session: Session, intent: PaymentIntent, payload: dict) -> None:
    ref, status = payload.get("id"), STRIPE_REFUND_STATUS.get(payload.get("status"))
    if not isinstance(ref, str) or status is None:
        log.warning("payment intent %s: a refund event without a refund id or a known status", intent.id)
        return
    known = _known_refund(session, intent, payload, ref)
    failure = payload.get("failure_reason") if isinstance(payload.get("failure_reason"), str) else None
    if known is not None:
        refunds.advance(session, known, status, provider_ref=ref, failure_message=failure)
    elif _amount(payload.get("amount")) and str(payload.get("currency", intent.currency)).upper() == intent.currency:
        refunds.learn(session, intent=intent, provider_ref=ref, amount_minor=payload["amount"], status=status)
    else:
        log.warning("payment intent %s: refund %s has no usable amount or currency; not applied", intent.id, ref)


def _charge_refunded(session: Session, intent: PaymentIntent, payload: dict) -> None:
    listed = payload.get("refunds").get("data") if isinstance(payload.get("refunds"), dict) else None
    for refund in listed if isinstance(listed, list) else []:  # unlisted ones come as refund.* events too
        if isinstance(refund, dict):
            _refund_changed(session, intent, refund)


def _known_refund(session: Session, intent: PaymentIntent, payload: dict, ref: str) -> Refund | None:
    """Ours by the id we sent as metadata (the event may come before our call's answer), else by reference."""
    metadata = payload.get("metadata") if isinstance(payload.get("metadata"), dict) else {}
    ours = metadata.get("coherency_refund")
    found = session.get(Refund, ours) if isinstance(ours, str) else None
    found = found or session.scalar(select(Refund).where(Refund.provider_ref == ref))
    return found if found is not None and found.intent_id == intent.id else None


def _amount(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= 100_000_000_000


HANDLERS = {"payment_intent.succeeded": _succeeded, "payment_intent.payment_failed": _failed,
            "payment_intent.canceled": _canceled, "refund.created": _refund_changed,
            "refund.updated": _refund_changed, "refund.failed": _refund_changed,
            "charge.refund.updated": _refund_changed, "charge.refunded": _charge_refunded}
