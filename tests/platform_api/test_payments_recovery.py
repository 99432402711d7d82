"""Idempotency keys expire (a key is new again after the TTL; expired records are purged as keys are claimed), and
work left unfinished by a request that died is resumed: a retry takes over a key held past the lease, and a
payment intent stuck in processing or capturing, or a refund stuck in requested, ends authorized, captured or
refunded, the provider asked again under the same idempotency key and never charging twice."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select, update

from platform_api.commerce.models import Order, OrderStatus
from platform_api.db import new_id, utcnow
from platform_api.errors import Upstream
from platform_api.payments import idempotency
from platform_api.payments.models import IdempotencyRecord, PaymentIntent, Refund, SandboxCharge, SandboxRequest
from platform_api.payments.providers import SandboxProvider, stamp
from platform_api.payments.schemas import IntentCreate, RefundCreate
from platform_api.settings import Settings
from tests.platform_api import commerce_factories as factories
from tests.platform_api import test_payments as payments
from tests.platform_api.test_payments import assert_balanced, key, ledger, order_status, paid_intent, pay

# fixtures for this module's tests
make_product, place_order, order = factories.make_product, factories.place_order, payments.order
LEASE_S = Settings().payment_lease_s  # what the tests' settings hold


def ago(seconds: float):
    return utcnow() - timedelta(seconds=seconds)


def dead_claim(session, user, key_value: str, method_path: tuple[str, str], body, *, age_s: float) -> IdempotencyRecord:
    """The record a request that died left: its key claimed `age_s` ago, never finished."""
    caller = SimpleNamespace(method=method_path[0], path=method_path[1])
    record = IdempotencyRecord(id=new_id(), user_id=user.id, key=key_value, created_at=ago(age_s),
                               locked_at=ago(age_s), request_hash=idempotency._fingerprint(caller, body))
    session.add(record)
    session.commit()
    return record


def stuck_intent(session, world, order, status: str, *, age_s: float, **fields) -> PaymentIntent:
    """An intent of the order as a dead request left it: claimed, its provider call never answered."""
    intent = PaymentIntent(id=new_id(), order_id=order["id"], patient_id=world.patient.id,
                           created_by=world.patient_user.id, active_order_id=order["id"], provider="sandbox",
                           status=status, amount_minor=order["total_minor"], currency="EUR", updated_at=ago(age_s),
                           **fields)
    session.add(intent)
    session.commit()
    return intent


def intents_of(session, order_id) -> int:
    return session.scalar(select(func.count()).select_from(PaymentIntent).where(PaymentIntent.order_id == order_id))


# ------------------------------------------------------------------------------------------------------ expiry


def test_an_expired_key_is_new_again(client, auth, world, session, order, make_product, place_order):
    headers = {**auth(world.patient_user), "Idempotency-Key": "monthly"}
    first = client.post("/payments/intents", json={"order_id": order["id"]}, headers=headers)
    assert first.status_code == 201
    other = place_order(world.patient_user, world.patient, (make_product(), 1))
    refused = client.post("/payments/intents", json={"order_id": other["id"]}, headers=headers)
    assert refused.status_code == 422 and refused.json()["code"] == "idempotency_key_reused"

    session.execute(update(IdempotencyRecord).where(IdempotencyRecord.key == "monthly")
                    .values(created_at=ago(24 * 3600 + 5)))
    session.commit()
    reused = client.post("/payments/intents", json={"order_id": other["id"]}, headers=headers)
    assert reused.status_code == 201 and "Idempotent-Replayed" not in reused.headers
    assert reused.json()["order_id"] == other["id"] and reused.json()["id"] != first.json()["id"]
    # the first request again, once its key expired, runs again instead of replaying: the order has its payment
    session.execute(update(IdempotencyRecord).where(IdempotencyRecord.key == "monthly")
                    .values(created_at=ago(24 * 3600 + 5)))
    session.commit()
    again = client.post("/payments/intents", json={"order_id": order["id"]}, headers=headers)
    assert again.status_code == 409 and again.json()["code"] == "conflict"


def test_expired_records_are_purged_a_bounded_batch_per_claimed_key(client, auth, world, session, order,
                                                                    monkeypatch):
    monkeypatch.setattr(idempotency, "PURGE_BATCH", 2)
    hours = {"oldest": 30, "older": 26, "old": 25, "recent": 23}
    for name, age in hours.items():
        dead_claim(session, world.caregiver, name, ("POST", "/x"), None, age_s=age * 3600)
    assert pay(client, auth(world.patient_user), order["id"]).status_code == 201

    def keys() -> set[str]:
        return set(session.scalars(select(IdempotencyRecord.key).where(IdempotencyRecord.user_id
                                                                        == world.caregiver.id)))

    assert keys() == {"old", "recent"}  # the two oldest went first
    intent = pay(client, auth(world.patient_user), order["id"])  # another claim (a 409, which gives its key up)
    assert intent.status_code == 409 and keys() == {"recent"}


# ----------------------------------------------------------------------------------------------- the lease


def test_a_retry_takes_over_a_dead_requests_key_and_resumes_its_stuck_intent(client, auth, world, session, order):
    body = {"order_id": order["id"]}
    dead_claim(session, world.patient_user, "crashed", ("POST", "/payments/intents"), IntentCreate(**body),
               age_s=LEASE_S + 5)
    intent = stuck_intent(session, world, order, "processing", age_s=LEASE_S + 5)
    headers = {**auth(world.patient_user), "Idempotency-Key": "crashed"}
    retried = client.post("/payments/intents", json=body, headers=headers)
    assert retried.status_code == 201, retried.text
    assert retried.json()["id"] == intent.id and retried.json()["status"] == "requires_capture"
    assert intents_of(session, order["id"]) == 1 and session.get(SandboxCharge, f"sbx_pi_{intent.id}") is not None
    replayed = client.post("/payments/intents", json=body, headers=headers)
    assert replayed.headers["Idempotent-Replayed"] == "true" and replayed.json() == retried.json()


def test_a_key_within_its_lease_is_not_taken_over(client, auth, world, session, order, monkeypatch):
    monkeypatch.setattr(idempotency, "WAIT_S", 0.2)
    body = {"order_id": order["id"]}
    dead_claim(session, world.patient_user, "busy", ("POST", "/payments/intents"), IntentCreate(**body),
               age_s=LEASE_S - 5)
    stuck_intent(session, world, order, "processing", age_s=LEASE_S - 5)
    busy = client.post("/payments/intents", json=body, headers={**auth(world.patient_user), "Idempotency-Key": "busy"})
    assert busy.status_code == 409 and busy.json()["code"] == "idempotency_in_progress"
    # nor is an intent still in its lease taken by a request with another key
    assert pay(client, auth(world.patient_user), order["id"]).status_code == 409


def test_a_stuck_intent_the_provider_authorized_is_resumed_without_a_second_hold(client, auth, world, session,
                                                                                  order):
    intent = stuck_intent(session, world, order, "processing", age_s=LEASE_S + 1)
    # the dead request's provider call went through; only our record of it was lost
    SandboxProvider(session).authorize(amount_minor=intent.amount_minor, currency="EUR", payment_method="pm_card_visa",
                                       reference=intent.id, idempotency_key=stamp(intent.id, "authorize"))
    resumed = pay(client, auth(world.patient_user), order["id"])  # a new key: the order's stuck intent resumes
    assert resumed.status_code == 201 and resumed.json()["id"] == intent.id
    assert resumed.json()["status"] == "requires_capture" and intents_of(session, order["id"]) == 1
    assert session.scalar(select(func.count()).select_from(SandboxCharge)
                          .where(SandboxCharge.ref == f"sbx_pi_{intent.id}")) == 1


def test_a_resumed_intent_that_is_declined_fails_and_frees_the_order(client, auth, world, session, order):
    intent = stuck_intent(session, world, order, "processing", age_s=LEASE_S + 1)
    declined = pay(client, auth(world.patient_user), order["id"], payment_method="pm_card_chargeDeclined")
    assert declined.status_code == 402
    session.refresh(intent)
    assert intent.status.value == "failed" and intent.active_order_id is None
    assert pay(client, auth(world.patient_user), order["id"]).status_code == 201


@pytest.mark.parametrize("provider_took_it", [False, True])
def test_a_stuck_capture_is_finished_once(client, auth, world, session, order, provider_took_it):
    intent = pay(client, auth(world.patient_user), order["id"]).json()
    # a capture that claimed the intent and the order, then died before or after the provider took the money
    session.execute(update(PaymentIntent).where(PaymentIntent.id == intent["id"])
                    .values(status="capturing", updated_at=ago(LEASE_S + 1)))
    session.execute(update(Order).where(Order.id == order["id"]).values(status=OrderStatus.paid, paid_at=utcnow()))
    session.commit()
    if provider_took_it:
        SandboxProvider(session).capture(provider_ref=intent["provider_ref"], amount_minor=intent["amount_minor"],
                                         idempotency_key=stamp(intent["id"], "capture"))
    captured = client.post(f"/payments/intents/{intent['id']}/capture", headers={**auth(world.clinician), **key()})
    assert captured.status_code == 200, captured.text
    assert captured.json()["status"] == "succeeded" and captured.json()["captured_minor"] == 2900
    charge = session.get(SandboxCharge, intent["provider_ref"])
    session.refresh(charge)
    assert charge.captures == 1 and order_status(session, order["id"]) == "paid"
    entries = ledger(client, auth, world, intent["id"])
    assert len(entries) == 2 and {e["kind"] for e in entries} == {"capture"}


def test_a_refund_left_requested_by_a_dead_request_is_finished_once(client, auth, world, session, order):
    intent = paid_intent(client, auth, world, order)
    body = RefundCreate(amount_minor=900)
    record = dead_claim(session, world.admin, "refund-1", ("POST", f"/payments/intents/{intent['id']}/refund"), body,
                        age_s=LEASE_S + 1)
    request_key = stamp(intent["id"], f"refund-{record.id}")
    session.execute(update(PaymentIntent).where(PaymentIntent.id == intent["id"]).values(refunding_minor=900))
    left = Refund(id=new_id(), intent_id=intent["id"], amount_minor=900, currency="EUR", status="requested",
                  request_key=request_key, updated_at=ago(LEASE_S + 1))
    session.add(left)
    session.commit()
    # the provider had refunded it before the process died
    refund_ref = SandboxProvider(session).refund(provider_ref=intent["provider_ref"], amount_minor=900,
                                                 idempotency_key=request_key, reference=left.id).ref
    headers = {**auth(world.admin), "Idempotency-Key": "refund-1"}
    retried = client.post(f"/payments/intents/{intent['id']}/refund", json={"amount_minor": 900}, headers=headers)
    assert retried.status_code == 200, retried.text
    assert (retried.json()["refunded_minor"], retried.json()["refunding_minor"]) == (900, 0)
    charge = session.get(SandboxCharge, intent["provider_ref"])
    session.refresh(charge)
    assert (charge.refunds, charge.refunded_minor) == (1, 900)
    refunds = [e for e in ledger(client, auth, world, intent["id"]) if e["kind"] == "refund"]
    assert {e["provider_ref"] for e in refunds} == {refund_ref} and len(refunds) == 2
    assert_balanced(ledger(client, auth, world, intent["id"]))


def test_the_sandbox_replays_a_repeated_idempotency_key(session, world, order):
    intent = stuck_intent(session, world, order, "processing", age_s=0)
    sandbox = SandboxProvider(session)
    hold = {"amount_minor": 2900, "currency": "EUR", "payment_method": "pm_card_visa", "reference": intent.id}
    first = sandbox.authorize(**hold, idempotency_key="k1")
    assert sandbox.authorize(**hold, idempotency_key="k1") == first
    sandbox.capture(provider_ref=first, amount_minor=2900, idempotency_key="k2")
    sandbox.capture(provider_ref=first, amount_minor=2900, idempotency_key="k2")  # replayed, not refused
    with pytest.raises(Upstream, match="captured already"):
        sandbox.capture(provider_ref=first, amount_minor=2900, idempotency_key="k3")
    with pytest.raises(Upstream, match="other parameters"):
        sandbox.capture(provider_ref=first, amount_minor=100, idempotency_key="k2")
    charge = session.get(SandboxCharge, first)
    session.refresh(charge)
    assert charge.captures == 1
    assert session.scalar(select(func.count()).select_from(SandboxRequest)) == 2
