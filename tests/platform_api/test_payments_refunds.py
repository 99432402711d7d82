"""Refund webhooks, signed as each provider signs them: a refund that fails after it succeeded is reversed, one made
at the provider's dashboard is learnt, a pending refund stays reserved until its event says how it ended; each
change of money once, whether an event is replayed, another event reports the same refund, or our call's answer
and the event race."""

from __future__ import annotations

import json
from uuid import uuid4

import pytest
import stripe
from sqlalchemy import update

from platform_api.commerce.models import Order, OrderStatus
from platform_api.payments import refunds, webhooks
from platform_api.payments.models import PaymentIntent, Refund, RefundStatus
from platform_api.payments.providers import StripeProvider, get_provider
from tests.platform_api import commerce_factories as factories
from tests.platform_api import test_payments as payments
from tests.platform_api.test_payments import RecordedStripe, assert_balanced, deliver, key, ledger, order_status

# fixtures for this module's tests
make_product, place_order, order = factories.make_product, factories.place_order, payments.order


def refund_object(refund_id: str, intent_ref: str, amount: int, status: str, **fields) -> dict:
    return {"id": refund_id, "object": "refund", "amount": amount, "currency": "eur", "status": status,
            "payment_intent": intent_ref, "metadata": {}, **fields}


def refund_event(kind: str, obj: dict, event_id: str | None = None) -> bytes:
    return json.dumps({"id": event_id or f"evt_{uuid4().hex}", "type": kind, "data": {"object": obj}}).encode()


def send(client, settings, body: bytes, provider: str = "sandbox"):
    if provider == "stripe":
        header = stripe.WebhookSignature.generate_signature_header(body.decode(), settings.webhook_secret)
    else:
        header = webhooks.sign(body, settings.webhook_secret)
    response = deliver(client, body, header, provider=provider)
    assert response.status_code == 200, response.text
    return response.json()


def intent_now(client, auth, world, session, intent_id) -> dict:
    session.expire_all()  # the tests share one session with the app: read what was stored, not what it holds
    return client.get(f"/payments/intents/{intent_id}", headers=auth(world.admin)).json()


def clearing_balance(entries: list[dict]) -> int:
    """What the provider holds for us by the ledger: debits minus credits of provider_clearing."""
    return sum(e["amount_minor"] * (1 if e["side"] == "debit" else -1) for e in entries
               if e["account"] == "provider_clearing")


def test_a_refund_that_fails_after_it_succeeded_is_reversed_once(client, auth, world, session, settings, order):
    intent = payments.paid_intent(client, auth, world, order)
    refunded = client.post(f"/payments/intents/{intent['id']}/refund", json={"amount_minor": 2900},
                           headers={**auth(world.admin), **key()})
    assert refunded.json()["status"] == "refunded" and order_status(session, order["id"]) == "refunded"
    refund_ref = next(e["provider_ref"] for e in ledger(client, auth, world, intent["id"]) if e["kind"] == "refund")

    failed = refund_event("refund.updated", refund_object(refund_ref, intent["provider_ref"], 2900, "failed",
                                                          failure_reason="lost_or_stolen_card"))
    assert send(client, settings, failed) == {"received": True, "duplicate": False}
    after = intent_now(client, auth, world, session, intent["id"])
    assert (after["status"], after["refunded_minor"], after["refunding_minor"]) == ("succeeded", 0, 0)
    assert order_status(session, order["id"]) == "paid"
    entries = ledger(client, auth, world, intent["id"])
    reversal = {(e["account"], e["side"], e["amount_minor"]) for e in entries if e["kind"] == "refund_reversal"}
    assert reversal == {("provider_clearing", "debit", 2900), ("refunds", "credit", 2900)}
    assert_balanced(entries)
    assert clearing_balance(entries) == 2900  # the money is back with the provider
    stored = session.query(Refund).filter_by(provider_ref=refund_ref).one()
    assert stored.status == RefundStatus.failed and stored.failure_message == "lost_or_stolen_card"

    assert send(client, settings, failed)["duplicate"] is True
    same_refund = refund_event("refund.failed", refund_object(refund_ref, intent["provider_ref"], 2900, "failed"))
    assert send(client, settings, same_refund)["duplicate"] is False  # a new event, about a refund already failed
    assert ledger(client, auth, world, intent["id"]) == entries
    assert intent_now(client, auth, world, session, intent["id"]) == after


def test_refunds_made_at_the_providers_dashboard_are_learnt_once(client, auth, world, session, settings, order):
    intent = payments.paid_intent(client, auth, world, order)
    first = refund_object("re_dash_1", intent["provider_ref"], 500, "succeeded")
    charge = {"id": "ch_1", "object": "charge", "payment_intent": intent["provider_ref"], "amount_refunded": 500,
              "refunds": {"object": "list", "data": [first]}}
    send(client, settings, refund_event("charge.refunded", charge))
    assert intent_now(client, auth, world, session, intent["id"])["refunded_minor"] == 500
    send(client, settings, refund_event("refund.updated", first))  # the same refund, reported again
    assert intent_now(client, auth, world, session, intent["id"])["refunded_minor"] == 500

    rest = refund_object("re_dash_2", intent["provider_ref"], 2400, "succeeded")
    send(client, settings, refund_event("refund.created", rest))
    after = intent_now(client, auth, world, session, intent["id"])
    assert (after["status"], after["refunded_minor"]) == ("refunded", 2900)
    assert order_status(session, order["id"]) == "refunded"
    too_much = refund_object("re_dash_3", intent["provider_ref"], 100, "succeeded")
    send(client, settings, refund_event("refund.created", too_much))  # more than was captured: not booked
    entries = ledger(client, auth, world, intent["id"])
    assert sorted((e["provider_ref"], e["amount_minor"]) for e in entries if e["kind"] == "refund" and
                  e["side"] == "debit") == [("re_dash_1", 500), ("re_dash_2", 2400)]
    assert_balanced(entries)
    assert clearing_balance(entries) == 0 and intent_now(client, auth, world, session, intent["id"]) == after


@pytest.fixture
def stripe_intent(session, world, order) -> PaymentIntent:
    """A captured Stripe payment of the order (the order paid)."""
    intent = PaymentIntent(order_id=order["id"], patient_id=world.patient.id, created_by=world.patient_user.id,
                           active_order_id=order["id"], provider="stripe", provider_ref="pi_3Refunds",
                           status="succeeded", amount_minor=2900, captured_minor=2900, currency="EUR")
    session.add(intent)
    session.execute(update(Order).where(Order.id == order["id"]).values(status=OrderStatus.paid))
    session.commit()
    return intent


def test_a_pending_stripe_refund_stays_reserved_until_its_event(app, client, auth, world, session, settings,
                                                                stripe_intent):
    answers = [(200, refund_object("re_slow", "pi_3Refunds", 1000, "pending")),
               (200, refund_object("re_lost", "pi_3Refunds", 1900, "pending"))]
    http = RecordedStripe(answers)
    app.dependency_overrides[get_provider] = lambda: StripeProvider("sk_test_offline", http_client=http)
    path = f"/payments/intents/{stripe_intent.id}/refund"
    pending = client.post(path, json={"amount_minor": 1000}, headers={**auth(world.admin), **key()})
    assert pending.status_code == 200, pending.text
    assert (pending.json()["refunded_minor"], pending.json()["refunding_minor"]) == (0, 1000)
    assert [e for e in ledger(client, auth, world, stripe_intent.id) if e["kind"] == "refund"] == []
    ours = http.sent[0][3].split("metadata[coherency_refund]=")[1]  # the refund id Stripe will send back

    done = refund_event("refund.updated", refund_object("re_slow", "pi_3Refunds", 1000, "succeeded",
                                                        metadata={"coherency_refund": ours}))
    send(client, settings, done, provider="stripe")
    after = intent_now(client, auth, world, session, stripe_intent.id)
    assert (after["status"], after["refunded_minor"], after["refunding_minor"]) == ("succeeded", 1000, 0)
    assert send(client, settings, done, provider="stripe")["duplicate"] is True

    client.post(path, json={"amount_minor": 1900}, headers={**auth(world.admin), **key()})
    assert intent_now(client, auth, world, session, stripe_intent.id)["refunding_minor"] == 1900
    send(client, settings, refund_event("refund.failed", refund_object("re_lost", "pi_3Refunds", 1900, "failed")),
         provider="stripe")
    after = intent_now(client, auth, world, session, stripe_intent.id)
    assert (after["refunded_minor"], after["refunding_minor"]) == (1000, 0)  # the reservation is released
    entries = ledger(client, auth, world, stripe_intent.id)
    assert [(e["provider_ref"], e["amount_minor"]) for e in entries if e["side"] == "debit"] == [("re_slow", 1000)]


class EventFirst(RecordedStripe):
    """Stripe whose refund event reaches our webhook before its answer reaches our call."""

    def __init__(self, answers: list, send_event) -> None:
        super().__init__(answers)
        self.send_event = send_event

    def request(self, method, url, headers, post_data=None, **kwargs):
        self.send_event(post_data.split("metadata[coherency_refund]=")[1])
        return super().request(method, url, headers, post_data, **kwargs)


@pytest.mark.parametrize("names_ours", [True, False], ids=["with_metadata", "without_metadata"])
def test_an_event_that_beats_our_calls_answer_moves_money_once(app, client, auth, world, session, settings,
                                                               stripe_intent, names_ours):
    def send_event(ours: str) -> None:
        metadata = {"coherency_refund": ours} if names_ours else {}
        event = refund_event("refund.created", refund_object("re_race", "pi_3Refunds", 700, "succeeded",
                                                             metadata=metadata))
        assert send(client, settings, event, provider="stripe")["duplicate"] is False

    http = EventFirst([(200, refund_object("re_race", "pi_3Refunds", 700, "succeeded"))], send_event)
    app.dependency_overrides[get_provider] = lambda: StripeProvider("sk_test_offline", http_client=http)
    answered = client.post(f"/payments/intents/{stripe_intent.id}/refund", json={"amount_minor": 700},
                           headers={**auth(world.admin), **key()})
    assert answered.status_code == 200, answered.text
    assert (answered.json()["refunded_minor"], answered.json()["refunding_minor"]) == (700, 0)
    entries = ledger(client, auth, world, stripe_intent.id)
    assert [(e["kind"], e["side"], e["amount_minor"]) for e in entries if e["side"] == "debit"] == [
        ("refund", "debit", 700)]
    session.expire_all()
    assert [(r.provider_ref, r.status) for r in session.query(Refund).filter_by(intent_id=stripe_intent.id)] == [
        ("re_race", RefundStatus.succeeded)]
    # and our call's answer, if it came again, changes nothing
    (stored,) = session.query(Refund).filter_by(intent_id=stripe_intent.id)
    assert refunds.advance(session, stored, RefundStatus.succeeded, provider_ref="re_race") is False
