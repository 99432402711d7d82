"""Simultaneous requests against `coherency api` on PostgreSQL: the database, not luck, settles who gets the
last dressing and how many times a payment is charged. Requests are released together by a barrier."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import date
from uuid import uuid4

import httpx
import pytest
from sqlalchemy import func, select

from platform_api.auth.models import Role, User
from platform_api.commerce.models import CartItem, Inventory, Order, OrderLine, Product
from platform_api.patients.models import Patient
from platform_api.payments.models import LedgerEntry, PaymentIntent, SandboxCharge
from tests.platform_api.live import live_api  # noqa: F401 - fixture

pytestmark = pytest.mark.postgres


def together(calls: list[Callable[[], httpx.Response]]) -> list[httpx.Response]:
    """Run the calls in threads released at once; their responses in call order."""
    barrier, responses = threading.Barrier(len(calls)), [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        responses[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return responses


def shop(session, *, buyers: int, on_hand: int, price_minor: int = 1500) -> tuple[Product, list[User]]:
    """A product with this stock, and `buyers` patients (each with a login) with one of it in their cart."""
    product = Product(sku=f"LIVE-{uuid4().hex[:10]}", name="Live foam", dressing_type="foam", size="10x10 cm",
                      price_minor=price_minor, currency="EUR")
    product.inventory = Inventory(on_hand=on_hand)
    patients = [Patient(given_name="Live", family_name=f"Buyer {i}", birth_date=date(1960, 1, 1), sex="unknown")
                for i in range(buyers)]
    session.add_all([product, *patients])
    session.flush()
    # a hash that matches no password: these users only ever use tokens signed by the test
    users = [User(email=f"buyer-{uuid4().hex[:12]}@example.org", password_hash="!", role=Role.patient,
                  patient_id=patient.id) for patient in patients]
    session.add_all(users)
    session.flush()
    session.add_all(CartItem(patient_id=u.patient_id, product_id=product.id, quantity=1, added_by=u.id) for u in users)
    session.commit()
    return product, users


def test_fifty_checkouts_for_ten_in_stock_sell_exactly_ten(live_api):  # noqa: F811
    with live_api.session() as session:
        product, buyers = shop(session, buyers=50, on_hand=10)
    with httpx.Client(base_url=live_api.url, timeout=60, limits=httpx.Limits(max_connections=60)) as client:
        responses = together([lambda u=u: client.post(f"/patients/{u.patient_id}/orders", headers=live_api.headers(u))
                              for u in buyers])
    assert Counter(r.status_code for r in responses) == {201: 10, 409: 40}
    assert all("out of stock" in r.json()["error"] for r in responses if r.status_code == 409)
    with live_api.session() as session:
        assert session.get(Inventory, product.id).on_hand == 0
        sold = session.scalar(select(func.sum(OrderLine.quantity)).where(OrderLine.product_id == product.id))
        orders = session.scalar(select(func.count()).select_from(Order).join(OrderLine)
                                .where(OrderLine.product_id == product.id))
        carts = session.scalar(select(func.count()).select_from(CartItem).where(CartItem.product_id == product.id))
    assert (sold, orders, carts) == (10, 10, 40)  # the refused keep their carts


def same_answer(responses: list[httpx.Response], status: int) -> dict:
    """Every response the same status and body, exactly one of them not a replay; that body."""
    assert {(r.status_code, r.text) for r in responses} == {(status, responses[0].text)}
    assert sum("Idempotent-Replayed" not in r.headers for r in responses) == 1  # one ran, the others replayed
    return responses[0].json()


def test_twenty_retries_of_one_payment_charge_once(live_api):  # noqa: F811
    with live_api.session() as session:
        _, (buyer,) = shop(session, buyers=1, on_hand=5)
    headers = live_api.headers(buyer)
    with httpx.Client(base_url=live_api.url, timeout=60, limits=httpx.Limits(max_connections=30)) as client:
        order = client.post(f"/patients/{buyer.patient_id}/orders", headers=headers).json()
        pay = {**headers, "Idempotency-Key": f"pay-{order['id']}"}
        intent = same_answer(together([lambda: client.post("/payments/intents", json={"order_id": order["id"]},
                                                           headers=pay) for _ in range(20)]), 201)
        capture = {**headers, "Idempotency-Key": f"capture-{intent['id']}"}
        captured = same_answer(together([lambda: client.post(f"/payments/intents/{intent['id']}/capture",
                                                             headers=capture) for _ in range(20)]), 200)
    assert captured["status"] == "succeeded" and captured["captured_minor"] == 1500
    with live_api.session() as session:
        intents = session.scalars(select(PaymentIntent).where(PaymentIntent.order_id == order["id"])).all()
        assert [i.id for i in intents] == [intent["id"]]
        charge = session.get(SandboxCharge, intent["provider_ref"])
        assert (charge.captures, charge.captured_minor) == (1, 1500)
        entries = session.scalars(select(LedgerEntry).where(LedgerEntry.intent_id == intent["id"])).all()
        assert sorted((e.side.value, e.amount_minor) for e in entries) == [("credit", 1500), ("debit", 1500)]
        assert session.get(Order, order["id"]).status.value == "paid"
