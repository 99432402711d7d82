"""Provider webhooks: the signature is checked before anything is read, each event id is processed once (a
unique constraint), and a payment intent event moves our intent as the provider says.

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
from platform_api.payments.models import IntentStatus, PaymentIntent, WebhookEvent
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
    payload = (event.get("data") or {}).get("object") if isinstance(event.get("data"), dict) else None
    ref = payload.get("id") if isinstance(payload, dict) and isinstance(payload.get("id"), str) else None
    intent = session.scalar(select(PaymentIntent).where(PaymentIntent.provider == provider,
                                                        PaymentIntent.provider_ref == ref)) if ref else None
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


HANDLERS = {"payment_intent.succeeded": _succeeded, "payment_intent.payment_failed": _failed,
            "payment_intent.canceled": _canceled}
