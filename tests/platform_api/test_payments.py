"""Payments: intents, capture, refunds and the double-entry ledger; Idempotency-Key replays; the sandbox's decline;
webhook signatures (sandbox and Stripe's, verified offline); the Stripe adapter against a recorded HTTP client."""

from __future__ import annotations

import json
import time
from collections import Counter
from types import SimpleNamespace
from uuid import uuid4

import pytest
import stripe
from sqlalchemy import func, select

from platform_api.commerce.models import Order
from platform_api.errors import Upstream
from platform_api.payments import idempotency, webhooks
from platform_api.payments.models import IdempotencyRecord, PaymentIntent, RefundStatus, SandboxCharge
from platform_api.payments.providers import PaymentDeclined, SandboxProvider, StripeProvider, get_provider
from platform_api.payments.schemas import IntentCreate
from platform_api.settings import Settings
from tests.platform_api import commerce_factories as factories

make_product, place_order = factories.make_product, factories.place_order  # fixtures for this module's tests


def key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid4())}


@pytest.fixture
def order(world, make_product, place_order) -> dict:
    """An order of the world's patient awaiting payment: 2 x 12.50 + 1 x 4.00 EUR."""
    return place_order(world.patient_user, world.patient, (make_product(price_minor=1250), 2),
                       (make_product(price_minor=400, dressing_type="film"), 1))


def pay(client, headers, order_id, **body):
    return client.post("/payments/intents", json={"order_id": order_id, **body}, headers={**headers, **key()})


def paid_intent(client, auth, world, order) -> dict:
    intent = pay(client, auth(world.patient_user), order["id"]).json()
    captured = client.post(f"/payments/intents/{intent['id']}/capture", headers={**auth(world.clinician), **key()})
    assert captured.status_code == 200, captured.text
    return captured.json()


def order_status(session, order_id) -> str:
    session.expire_all()
    return session.get(Order, order_id).status.value


def ledger(client, auth, world, intent_id=None) -> list[dict]:
    params = {"intent_id": intent_id} if intent_id else {}
    response = client.get("/payments/ledger", params=params, headers=auth(world.admin))
    assert response.status_code == 200
    return response.json()


def assert_balanced(entries: list[dict]) -> None:
    """Debits equal credits, in total and within every posting."""
    for posting in {e["posting_id"] for e in entries}:
        sides = Counter()
        for e in entries:
            if e["posting_id"] == posting:
                sides[e["side"]] += e["amount_minor"]
        assert sides["debit"] == sides["credit"] > 0, posting


def test_authorize_capture_marks_the_order_paid_and_posts_the_ledger(client, auth, world, session, order):
    created = pay(client, auth(world.patient_user), order["id"])
    assert created.status_code == 201
    intent = created.json()
    assert intent["status"] == "requires_capture" and intent["amount_minor"] == 2900 == order["total_minor"]
    assert intent["provider"] == "sandbox" and intent["provider_ref"] == f"sbx_pi_{intent['id']}"
    assert order_status(session, order["id"]) == "pending_payment" and ledger(client, auth, world, intent["id"]) == []

    captured = client.post(f"/payments/intents/{intent['id']}/capture", headers={**auth(world.caregiver), **key()})
    assert captured.status_code == 200
    assert captured.json()["status"] == "succeeded" and captured.json()["captured_minor"] == 2900
    assert order_status(session, order["id"]) == "paid"
    entries = ledger(client, auth, world, intent["id"])
    assert {(e["account"], e["side"], e["amount_minor"]) for e in entries} == {
        ("provider_clearing", "debit", 2900), ("sales", "credit", 2900)}
    assert_balanced(entries)
    assert session.get(SandboxCharge, intent["provider_ref"]).captures == 1
    again = client.post(f"/payments/intents/{intent['id']}/capture", headers={**auth(world.caregiver), **key()})
    assert again.status_code == 409 and len(ledger(client, auth, world, intent["id"])) == 2


def test_partial_and_full_refunds_never_exceed_what_was_captured(client, auth, world, session, order):
    intent = paid_intent(client, auth, world, order)
    path, admin = f"/payments/intents/{intent['id']}/refund", auth(world.admin)
    assert client.post(path, json={"amount_minor": 100}, headers={**auth(world.clinician), **key()}).status_code == 403
    partial = client.post(path, json={"amount_minor": 900}, headers={**admin, **key()})
    assert partial.status_code == 200
    assert partial.json()["status"] == "succeeded" and partial.json()["refunded_minor"] == 900
    assert order_status(session, order["id"]) == "paid"
    retry_key = {**admin, **key()}
    too_much = client.post(path, json={"amount_minor": 2001}, headers=retry_key)
    assert too_much.status_code == 422 and "2000" in too_much.json()["error"]
    rest = client.post(path, json={"amount_minor": 2000}, headers=retry_key)  # a refusal does not bind its key
    assert rest.json()["status"] == "refunded" and rest.json()["refunded_minor"] == 2900
    assert order_status(session, order["id"]) == "refunded"
    assert client.post(path, json={"amount_minor": 1}, headers={**admin, **key()}).status_code == 409
    entries = ledger(client, auth, world, intent["id"])
    assert_balanced(entries)
    assert sorted(e["amount_minor"] for e in entries if e["kind"] == "refund") == [900, 900, 2000, 2000]
    net = sum(e["amount_minor"] * (1 if e["side"] == "debit" else -1) for e in entries
              if e["account"] == "provider_clearing")
    assert net == 0  # everything captured went back
    charge = session.get(SandboxCharge, intent["provider_ref"])
    session.refresh(charge)
    assert (charge.refunded_minor, charge.refunds) == (2900, 2)


def test_a_retry_with_the_same_key_replays_the_response_without_charging_again(client, auth, world, session, order):
    headers = {**auth(world.patient_user), "Idempotency-Key": "order-1-pay"}
    first = client.post("/payments/intents", json={"order_id": order["id"]}, headers=headers)
    retry = client.post("/payments/intents", json={"order_id": order["id"]}, headers=headers)
    assert (retry.status_code, retry.json()) == (first.status_code, first.json()) == (201, first.json())
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert session.scalar(select(func.count()).select_from(PaymentIntent)
                          .where(PaymentIntent.order_id == order["id"])) == 1

    capture_headers = {**auth(world.patient_user), "Idempotency-Key": "order-1-capture"}
    path = f"/payments/intents/{first.json()['id']}/capture"
    captures = [client.post(path, headers=capture_headers) for _ in range(3)]
    assert {(c.status_code, c.text) for c in captures} == {(200, captures[0].text)}
    assert session.get(SandboxCharge, first.json()["provider_ref"]).captures == 1
    assert len(ledger(client, auth, world, first.json()["id"])) == 2


def test_the_same_key_with_another_request_is_refused(client, auth, world, make_product, place_order, order):
    headers = {**auth(world.patient_user), "Idempotency-Key": "reused"}
    assert client.post("/payments/intents", json={"order_id": order["id"]}, headers=headers).status_code == 201
    other = place_order(world.patient_user, world.patient, (make_product(), 1))
    reused = client.post("/payments/intents", json={"order_id": other["id"]}, headers=headers)
    assert reused.status_code == 422 and reused.json()["code"] == "idempotency_key_reused"
    # a key is the caller's own: another user may use the same string
    assert client.post("/payments/intents", json={"order_id": other["id"]},
                       headers={**auth(world.caregiver), "Idempotency-Key": "reused"}).status_code == 201


def test_a_retry_while_the_first_still_runs_waits_and_then_gets_409_or_the_answer(client, auth, world, session,
                                                                                 order, monkeypatch):
    monkeypatch.setattr(idempotency, "WAIT_S", 0.3)
    body = {"order_id": order["id"]}
    request = SimpleNamespace(method="POST", path="/payments/intents")
    running = IdempotencyRecord(user_id=world.patient_user.id, key="slow",
                                request_hash=idempotency._fingerprint(request, IntentCreate(**body)))
    session.add(running)  # the first request's claim, as it stands while its work still runs
    session.commit()
    headers = {**auth(world.patient_user), "Idempotency-Key": "slow"}
    started = time.monotonic()
    waited = client.post("/payments/intents", json=body, headers=headers)
    assert waited.status_code == 409 and waited.json()["code"] == "idempotency_in_progress"
    assert time.monotonic() - started >= 0.3 and waited.headers["Retry-After"] == "1"
    other = client.post("/payments/intents", json={**body, "payment_method": "pm_card_mastercard"}, headers=headers)
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    running.status_code, running.response_body = 201, {"id": "the first answer"}
    session.commit()
    replayed = client.post("/payments/intents", json=body, headers=headers)
    assert (replayed.status_code, replayed.json()) == (201, {"id": "the first answer"})
    assert session.scalar(select(func.count()).select_from(PaymentIntent)
                          .where(PaymentIntent.order_id == order["id"])) == 0


def test_every_mutating_payment_call_needs_an_idempotency_key(client, auth, world, order):
    headers = auth(world.patient_user)
    missing = client.post("/payments/intents", json={"order_id": order["id"]}, headers=headers)
    assert missing.status_code == 422 and "Idempotency-Key" in missing.json()["error"]
    intent = pay(client, headers, order["id"]).json()
    assert client.post(f"/payments/intents/{intent['id']}/capture", headers=headers).status_code == 422
    assert client.post(f"/payments/intents/{intent['id']}/refund", json={"amount_minor": 1},
                       headers=auth(world.admin)).status_code == 422


def test_a_declined_card_fails_the_intent_and_frees_the_order(client, auth, world, session, order):
    headers = {**auth(world.patient_user), **key()}
    body = {"order_id": order["id"], "payment_method": "pm_card_chargeDeclined"}
    declined = client.post("/payments/intents", json=body, headers=headers)
    assert declined.status_code == 402 and declined.json()["code"] == "payment_declined"
    replayed = client.post("/payments/intents", json=body, headers=headers)
    assert (replayed.status_code, replayed.json()) == (402, declined.json())
    failed = session.scalars(select(PaymentIntent).where(PaymentIntent.order_id == order["id"])).one()
    assert failed.status.value == "failed" and "declined" in failed.failure_message
    assert order_status(session, order["id"]) == "pending_payment"
    assert pay(client, auth(world.patient_user), order["id"]).status_code == 201


def test_one_live_intent_per_order_and_none_for_a_cancelled_order(client, auth, world, order):
    headers = auth(world.patient_user)
    intent = pay(client, headers, order["id"]).json()
    assert pay(client, headers, order["id"]).status_code == 409
    client.post(f"/orders/{order['id']}/cancel", headers=headers)
    refused = client.post(f"/payments/intents/{intent['id']}/capture", headers={**headers, **key()})
    assert refused.status_code == 409
    assert client.get(f"/payments/intents/{intent['id']}", headers=headers).json()["status"] == "requires_capture"
    assert pay(client, headers, order["id"]).status_code == 409


def test_another_patients_payments_are_not_found(client, auth, world, order):
    intent = pay(client, auth(world.patient_user), order["id"]).json()
    for who in (world.other_user, world.other_clinician):
        headers = auth(who)
        assert pay(client, headers, order["id"]).status_code == 404
        assert client.get(f"/payments/intents/{intent['id']}", headers=headers).status_code == 404
        assert client.post(f"/payments/intents/{intent['id']}/capture", headers={**headers, **key()}).status_code \
            == 404
    assert client.get("/payments/ledger", headers=auth(world.clinician)).status_code == 403
    assert client.get(f"/payments/intents/{intent['id']}", headers=auth(world.caregiver)).status_code == 200


def test_payments_are_audited(client, auth, world, order):
    intent = paid_intent(client, auth, world, order)
    client.get(f"/payments/intents/{intent['id']}", headers=auth(world.caregiver))
    records = client.get("/audit", params={"patient_id": world.patient.id}, headers=auth(world.admin)).json()
    seen = {(r["actor_id"], r["action"], r["resource_type"]) for r in records}
    assert {(world.patient_user.id, "create", "payment_intent"), (world.clinician.id, "update", "payment_intent"),
            (world.caregiver.id, "read", "payment_intent")} <= seen


# -------------------------------------------------------------------------------------------------- webhooks


def event(kind: str, ref: str, event_id: str | None = None, **fields) -> bytes:
    body = {"id": event_id or f"evt_{uuid4().hex}", "type": kind, "data": {"object": {"id": ref, **fields}}}
    return json.dumps(body).encode()


def deliver(client, body: bytes, signature: str | None, provider="sandbox"):
    header = webhooks.SIGNATURE_HEADERS[provider]
    return client.post(f"/payments/webhooks/{provider}", content=body,
                       headers={"Content-Type": "application/json", **({header: signature} if signature else {})})


def test_a_signed_webhook_is_processed_once(client, auth, world, session, settings, order):
    intent = pay(client, auth(world.patient_user), order["id"]).json()
    body = event("payment_intent.succeeded", intent["provider_ref"])
    first = deliver(client, body, webhooks.sign(body, settings.webhook_secret))
    assert first.status_code == 200 and first.json() == {"received": True, "duplicate": False}
    assert client.get(f"/payments/intents/{intent['id']}", headers=auth(world.admin)).json()["status"] == "succeeded"
    assert order_status(session, order["id"]) == "paid"
    replayed = deliver(client, body, webhooks.sign(body, settings.webhook_secret))
    assert replayed.status_code == 200 and replayed.json()["duplicate"] is True
    assert len(ledger(client, auth, world, intent["id"])) == 2


@pytest.mark.parametrize("forge", ["wrong_secret", "tampered", "stale", "future", "missing", "garbled"])
def test_bad_or_stale_signatures_are_refused(client, auth, world, settings, order, forge):
    intent = pay(client, auth(world.patient_user), order["id"]).json()
    body = event("payment_intent.succeeded", intent["provider_ref"])
    signature = {
        "wrong_secret": webhooks.sign(body, "whsec_not_ours"),
        "tampered": webhooks.sign(body.replace(b"succeeded", b"canceled"), settings.webhook_secret),
        "stale": webhooks.sign(body, settings.webhook_secret, int(time.time()) - webhooks.TOLERANCE_S - 10),
        "future": webhooks.sign(body, settings.webhook_secret, int(time.time()) + webhooks.TOLERANCE_S + 10),
        "missing": None,
        "garbled": "t=soon,v1=zz",
    }[forge]
    refused = deliver(client, body, signature)
    assert refused.status_code == 400 and refused.json()["code"] == "bad_signature"
    assert client.get(f"/payments/intents/{intent['id']}", headers=auth(world.admin)).json()["status"] == \
        "requires_capture"


def test_failed_and_unknown_events(client, auth, world, settings, order):
    intent = pay(client, auth(world.patient_user), order["id"]).json()
    failed = event("payment_intent.payment_failed", intent["provider_ref"],
                   last_payment_error={"message": "insufficient funds"})
    assert deliver(client, failed, webhooks.sign(failed, settings.webhook_secret)).status_code == 200
    after = client.get(f"/payments/intents/{intent['id']}", headers=auth(world.admin)).json()
    assert after["status"] == "failed" and after["failure_message"] == "insufficient funds"
    unknown = event("charge.dispute.created", "sbx_pi_nobody")
    assert deliver(client, unknown, webhooks.sign(unknown, settings.webhook_secret)).json()["duplicate"] is False
    not_json = b"not json"
    assert deliver(client, not_json, webhooks.sign(not_json, settings.webhook_secret)).status_code == 400


def test_a_stripe_signed_webhook_is_verified_offline(client, session, settings, world, order):
    intent = PaymentIntent(order_id=order["id"], patient_id=world.patient.id, created_by=world.patient_user.id,
                           active_order_id=order["id"], provider="stripe", provider_ref="pi_3StripeTest",
                           status="requires_capture", amount_minor=2900, currency="EUR")
    session.add(intent)
    session.commit()
    payload = event("payment_intent.succeeded", "pi_3StripeTest").decode()
    header = stripe.WebhookSignature.generate_signature_header(payload, settings.webhook_secret)
    accepted = deliver(client, payload.encode(), header, provider="stripe")
    assert accepted.status_code == 200 and accepted.json()["duplicate"] is False
    session.refresh(intent)
    assert intent.status.value == "succeeded" and order_status(session, order["id"]) == "paid"
    old = stripe.WebhookSignature.generate_signature_header(payload, settings.webhook_secret,
                                                            timestamp=int(time.time()) - 3600)
    assert deliver(client, payload.encode(), old, provider="stripe").status_code == 400
    forged = stripe.WebhookSignature.generate_signature_header(payload, "whsec_someone_else")
    assert deliver(client, payload.encode(), forged, provider="stripe").json()["code"] == "bad_signature"
    sandbox_signed = webhooks.sign(payload.encode(), "whsec_someone_else")
    assert deliver(client, payload.encode(), sandbox_signed, provider="stripe").status_code == 400


# ------------------------------------------------------------------------------------ the Stripe adapter, offline


class RecordedStripe(stripe.HTTPClient):
    """Stripe's HTTP layer replaced by canned answers, recording what the adapter sent."""

    name = "recorded"

    def __init__(self, answers: list[tuple[int, dict]]) -> None:
        super().__init__()
        self.answers, self.sent = answers, []

    def request(self, method, url, headers, post_data=None, **_):
        self.sent.append((method, url, dict(headers or {}), post_data))
        status, body = self.answers.pop(0)
        return json.dumps(body), status, {"Request-Id": "req_test"}

    def close(self):
        pass


def test_stripe_adapter_uses_manual_capture_and_idempotency_keys():
    http = RecordedStripe([(200, {"id": "pi_1", "object": "payment_intent", "status": "requires_capture"}),
                           (200, {"id": "pi_1", "object": "payment_intent", "status": "succeeded"}),
                           (200, {"id": "re_1", "object": "refund", "status": "succeeded"})])
    provider = StripeProvider("sk_test_offline", http_client=http)
    assert provider.authorize(amount_minor=2900, currency="EUR", payment_method="pm_card_visa", reference="i-1",
                              idempotency_key="k-auth") == "pi_1"
    provider.capture(provider_ref="pi_1", amount_minor=2900, idempotency_key="k-capture")
    assert provider.refund(provider_ref="pi_1", amount_minor=500, idempotency_key="k-refund",
                           reference="r-1") == ("re_1", RefundStatus.succeeded)
    (m1, u1, h1, d1), (_, u2, _, d2), (_, u3, h3, d3) = http.sent
    assert (m1, u1) == ("post", "https://api.stripe.com/v1/payment_intents")
    assert "capture_method=manual" in d1 and "amount=2900" in d1 and "currency=eur" in d1
    assert h1["Idempotency-Key"] == "k-auth" and h1["Authorization"] == "Bearer sk_test_offline"
    assert u2.endswith("/v1/payment_intents/pi_1/capture") and "amount_to_capture=2900" in d2
    assert u3.endswith("/v1/refunds") and "payment_intent=pi_1" in d3 and h3["Idempotency-Key"] == "k-refund"
    assert "metadata[coherency_refund]=r-1" in d3  # the refund's events name our refund


def test_stripe_adapter_maps_declines_and_failures():
    card_error = {"error": {"type": "card_error", "code": "card_declined", "message": "Your card was declined."}}
    http = RecordedStripe([(402, card_error), (400, {"error": {"type": "invalid_request_error", "message": "no"}})])
    provider = StripeProvider("sk_test_offline", http_client=http)
    with pytest.raises(PaymentDeclined, match="declined"):
        provider.authorize(amount_minor=100, currency="EUR", payment_method="pm_card_chargeDeclined",
                           reference="i-2", idempotency_key="k")
    with pytest.raises(Upstream, match="InvalidRequestError"):
        provider.capture(provider_ref="pi_2", amount_minor=100, idempotency_key="k2")


def test_the_settings_choose_the_provider():
    assert isinstance(get_provider(Settings(), session=None), SandboxProvider)
    chosen = get_provider(Settings(payment_provider="stripe", stripe_api_key="sk_test_offline"), session=None)
    assert isinstance(chosen, StripeProvider) and chosen.name == "stripe"
