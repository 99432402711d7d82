"""The dressing shop: catalogue and stock, prescriptions, carts, checkout and cancel, dressing advice; who may do
what, and the audit trail it leaves."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from platform_api.commerce.models import Inventory, Prescription
from platform_api.db import utcnow
from tests.platform_api import commerce_factories as factories
from tests.platform_api.commerce_factories import in_days

# the factories' fixtures, made available to this module's tests
make_product, make_prescription, make_assessment, place_order = (
    factories.make_product, factories.make_prescription, factories.make_assessment, factories.place_order)

FOAM = {"sku": "FOAM-10", "name": "Foam 10x10", "dressing_type": "foam", "size": "10x10 cm", "price_minor": 1250}


def on_hand(session, product) -> int:
    session.expire_all()
    return session.scalar(select(Inventory.on_hand).where(Inventory.product_id == product.id))


# ----------------------------------------------------------------------------------------------------- catalogue


def test_admin_keeps_the_catalogue_and_everyone_reads_it(client, auth, world):
    admin = auth(world.admin)
    created = client.post("/products", json={**FOAM, "on_hand": 5}, headers=admin)
    assert created.status_code == 201
    product = created.json()
    assert product["currency"] == "EUR" and product["on_hand"] == 5 and product["prescription_only"] is False
    assert client.post("/products", json=FOAM, headers=admin).status_code == 409
    assert client.post("/products", json={**FOAM, "sku": "X"}, headers=auth(world.clinician)).status_code == 403
    gel = client.post("/products", json={**FOAM, "sku": "GEL-1", "dressing_type": "hydrogel", "currency": "GBP"},
                      headers=admin).json()
    assert gel["currency"] == "GBP"
    foams = client.get("/products", params={"dressing_type": "foam"}, headers=auth(world.patient_user)).json()
    assert [p["sku"] for p in foams] == ["FOAM-10"]

    changed = client.patch(f"/products/{product['id']}", json={"price_minor": 990, "active": False}, headers=admin)
    assert changed.status_code == 200 and changed.json()["price_minor"] == 990
    assert client.patch(f"/products/{product['id']}", json={"name": "x"}, headers=auth(world.caregiver)).status_code \
        == 403
    assert "FOAM-10" not in {p["sku"] for p in client.get("/products", headers=auth(world.patient_user)).json()}
    every = client.get("/products", params={"include_inactive": True}, headers=admin).json()
    assert "FOAM-10" in {p["sku"] for p in every}

    stock = client.put(f"/products/{product['id']}/inventory", json={"on_hand": 40}, headers=admin)
    assert stock.status_code == 200 and stock.json()["on_hand"] == 40
    assert client.put(f"/products/{product['id']}/inventory", json={"on_hand": -1}, headers=admin).status_code == 422
    assert client.put(f"/products/{product['id']}/inventory", json={"on_hand": 1},
                      headers=auth(world.clinician)).status_code == 403
    assert client.put("/products/no-such-id/inventory", json={"on_hand": 1}, headers=admin).status_code == 404


@pytest.mark.parametrize("change", [{"price_minor": 12.5}, {"price_minor": -1}, {"currency": "eur"},
                                    {"dressing_type": "bandage"}])
def test_catalogue_refuses_bad_values(client, auth, world, change):
    response = client.post("/products", json={**FOAM, **change}, headers=auth(world.admin))
    assert response.status_code == 422 and set(response.json()) == {"error", "code"}


def test_the_database_forbids_negative_stock(session, make_product):
    product = make_product(on_hand=1)
    with pytest.raises(IntegrityError), session.begin_nested():
        session.execute(update(Inventory).where(Inventory.product_id == product.id).values(on_hand=-1))


# ------------------------------------------------------------------------------------------------ prescriptions


def test_only_a_clinician_on_the_care_team_prescribes(client, auth, world, make_product):
    product = make_product(prescription_only=True)
    path = f"/patients/{world.patient.id}/prescriptions"
    body = {"product_id": product.id, "quantity": 4, "valid_until": in_days(30).isoformat()}
    created = client.post(path, json=body, headers=auth(world.clinician))
    assert created.status_code == 201
    assert created.json()["prescriber_id"] == world.clinician.id and created.json()["dispensed"] == 0
    for who in (world.caregiver, world.admin, world.patient_user):
        assert client.post(path, json=body, headers=auth(who)).status_code == 403, who.role
    assert client.post(path, json=body, headers=auth(world.other_clinician)).status_code == 404
    assert client.get(path, headers=auth(world.other_user)).status_code == 404
    assert [p["id"] for p in client.get(path, headers=auth(world.patient_user)).json()] == [created.json()["id"]]


@pytest.mark.parametrize("change", [{"product_id": "no-such-product"}, {"valid_until": "2020-01-01T00:00:00Z"},
                                    {"valid_until": "2030-01-01T00:00:00"}, {"dressing_type": "foam"},
                                    {"product_id": None}, {"quantity": 0}])
def test_prescription_refusals(client, auth, world, make_product, change):
    body = {"product_id": make_product().id, "quantity": 4, "valid_until": in_days(30).isoformat(), **change}
    response = client.post(f"/patients/{world.patient.id}/prescriptions", json=body, headers=auth(world.clinician))
    assert response.status_code == 422, response.text


def test_revoking_a_prescription(client, auth, world, make_product, make_prescription):
    prescription = make_prescription(world.patient, world.clinician, product=make_product())
    path = f"/prescriptions/{prescription.id}/revoke"
    assert client.post(path, headers=auth(world.other_clinician)).status_code == 404
    assert client.post(path, headers=auth(world.caregiver)).status_code == 403
    revoked = client.post(path, headers=auth(world.clinician))
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert client.post(path, headers=auth(world.clinician)).status_code == 409


# ----------------------------------------------------------------------------------------------- cart, checkout


def test_cart_belongs_to_the_patient_and_their_care_team(client, auth, world, make_product):
    product, other = make_product(price_minor=500), make_product(price_minor=300)
    path = f"/patients/{world.patient.id}/cart"
    put = client.put(f"{path}/items/{product.id}", json={"quantity": 2}, headers=auth(world.patient_user))
    assert put.status_code == 200 and put.json()["total_minor"] == 1000
    client.put(f"{path}/items/{product.id}", json={"quantity": 3}, headers=auth(world.caregiver))
    cart = client.put(f"{path}/items/{other.id}", json={"quantity": 1}, headers=auth(world.clinician)).json()
    assert {i["product"]["id"]: i["quantity"] for i in cart["items"]} == {product.id: 3, other.id: 1}
    assert cart["total_minor"] == 1800 and cart["currency"] == "EUR"
    removed = client.delete(f"{path}/items/{other.id}", headers=auth(world.patient_user)).json()
    assert [i["product"]["id"] for i in removed["items"]] == [product.id]
    assert client.get(path, headers=auth(world.other_user)).status_code == 404
    assert client.put(f"{path}/items/{product.id}", json={"quantity": 1},
                      headers=auth(world.other_clinician)).status_code == 404
    assert client.put(f"{path}/items/{product.id}", json={"quantity": 1}, headers=auth(world.admin)).status_code \
        == 403
    assert client.put(f"{path}/items/no-such", json={"quantity": 1}, headers=auth(world.patient_user)).status_code \
        == 404
    assert client.put(f"{path}/items/{product.id}", json={"quantity": 0},
                      headers=auth(world.patient_user)).status_code == 422


def test_checkout_makes_an_order_and_takes_stock(client, auth, world, session, make_product, place_order):
    foam, film = make_product(on_hand=5, price_minor=1250), make_product(on_hand=2, price_minor=400,
                                                                         dressing_type="film")
    order = place_order(world.patient_user, world.patient, (foam, 2), (film, 2))
    assert order["status"] == "pending_payment" and order["total_minor"] == 2 * 1250 + 2 * 400
    assert {line["product_id"]: line["quantity"] for line in order["lines"]} == {foam.id: 2, film.id: 2}
    assert order["placed_by"] == world.patient_user.id and order["currency"] == "EUR"
    assert (on_hand(session, foam), on_hand(session, film)) == (3, 0)
    assert client.get(f"/patients/{world.patient.id}/cart", headers=auth(world.patient_user)).json()["items"] == []
    empty = client.post(f"/patients/{world.patient.id}/orders", headers=auth(world.patient_user))
    assert empty.status_code == 422 and "empty" in empty.json()["error"]


def test_checkout_is_all_or_nothing_when_a_line_is_out_of_stock(client, auth, world, session, make_product):
    plenty, scarce = make_product(on_hand=9, name="Plenty"), make_product(on_hand=1, name="Scarce alginate")
    headers, path = auth(world.patient_user), f"/patients/{world.patient.id}"
    for product in (plenty, scarce):
        client.put(f"{path}/cart/items/{product.id}", json={"quantity": 2}, headers=headers)
    refused = client.post(f"{path}/orders", headers=headers)
    assert refused.status_code == 409 and refused.json()["code"] == "conflict"
    assert "out of stock" in refused.json()["error"] and "Scarce alginate" in refused.json()["error"]
    assert (on_hand(session, plenty), on_hand(session, scarce)) == (9, 1)
    assert client.get(f"{path}/orders", headers=headers).json() == []
    assert len(client.get(f"{path}/cart", headers=headers).json()["items"]) == 2


def test_checkout_refuses_a_stopped_product_and_mixed_currencies(client, auth, world, session, make_product):
    euro, pound = make_product(), make_product(currency="GBP")
    headers, path = auth(world.patient_user), f"/patients/{world.patient.id}"
    for product in (euro, pound):
        client.put(f"{path}/cart/items/{product.id}", json={"quantity": 1}, headers=headers)
    assert "currencies" in client.post(f"{path}/orders", headers=headers).json()["error"]
    client.delete(f"{path}/cart/items/{pound.id}", headers=headers)
    client.patch(f"/products/{euro.id}", json={"active": False}, headers=auth(world.admin))
    stopped = client.post(f"{path}/orders", headers=headers)
    assert stopped.status_code == 422 and "no longer sold" in stopped.json()["error"]


def test_cancel_puts_stock_back_once(client, auth, world, session, make_product, place_order):
    product = make_product(on_hand=4)
    order = place_order(world.caregiver, world.patient, (product, 3))
    assert on_hand(session, product) == 1
    assert client.post(f"/orders/{order['id']}/cancel", headers=auth(world.other_user)).status_code == 404
    cancelled = client.post(f"/orders/{order['id']}/cancel", headers=auth(world.patient_user))
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["cancelled_at"] is not None and on_hand(session, product) == 4
    again = client.post(f"/orders/{order['id']}/cancel", headers=auth(world.patient_user))
    assert again.status_code == 409 and on_hand(session, product) == 4


def test_orders_are_seen_only_by_who_may_see_the_patient(client, auth, world, make_product, place_order):
    order = place_order(world.patient_user, world.patient, (make_product(), 1))
    for who in (world.patient_user, world.clinician, world.caregiver, world.admin):
        assert client.get(f"/orders/{order['id']}", headers=auth(who)).json()["id"] == order["id"]
    for who in (world.other_user, world.other_clinician):
        assert client.get(f"/orders/{order['id']}", headers=auth(who)).status_code == 404
        assert client.get(f"/patients/{world.patient.id}/orders", headers=auth(who)).status_code == 404
    listed = client.get(f"/patients/{world.patient.id}/orders", headers=auth(world.clinician)).json()
    assert [o["id"] for o in listed] == [order["id"]]


# ---------------------------------------------------------------------------------- prescriptions at checkout


def checkout_one(client, auth, world, product, quantity=1, buyer=None):
    headers = auth(buyer or world.patient_user)
    client.put(f"/patients/{world.patient.id}/cart/items/{product.id}", json={"quantity": quantity},
               headers=headers)
    return client.post(f"/patients/{world.patient.id}/orders", headers=headers)


@pytest.mark.parametrize("case", ["missing", "expired", "revoked", "for_another_patient", "by_a_caregiver",
                                  "other_dressing_type"])
def test_prescription_only_needs_a_valid_clinicians_prescription(client, auth, world, session, make_product,
                                                                 make_prescription, case):
    product = make_product(prescription_only=True, dressing_type="antimicrobial", name="Silver foam", on_hand=3)
    written = {"expired": dict(valid_until=utcnow() - timedelta(minutes=1)), "revoked": dict(revoked=True)}
    if case in written:
        make_prescription(world.patient, world.clinician, product=product, **written[case])
    elif case == "for_another_patient":
        make_prescription(world.other, world.other_clinician, product=product)
    elif case == "by_a_caregiver":
        make_prescription(world.patient, world.caregiver, product=product)
    elif case == "other_dressing_type":
        make_prescription(world.patient, world.clinician, dressing_type="foam")
    refused = checkout_one(client, auth, world, product)
    assert refused.status_code == 422, refused.text
    assert "Silver foam" in refused.json()["error"] and "prescription" in refused.json()["error"]
    assert on_hand(session, product) == 3


def test_a_prescription_of_the_product_or_its_type_is_drawn_on(client, auth, world, session, make_product,
                                                               make_prescription):
    product = make_product(prescription_only=True, dressing_type="alginate", on_hand=20)
    by_type = make_prescription(world.patient, world.clinician, dressing_type="alginate", quantity=3)
    first = checkout_one(client, auth, world, product, quantity=2)
    assert first.status_code == 201 and first.json()["lines"][0]["prescription_id"] == by_type.id
    short = checkout_one(client, auth, world, product, quantity=2)
    assert short.status_code == 422 and "fewer than 2 left" in short.json()["error"]
    client.post(f"/orders/{first.json()['id']}/cancel", headers=auth(world.patient_user))
    session.expire_all()
    assert session.get(Prescription, by_type.id).dispensed == 0
    own = make_prescription(world.patient, world.clinician, product=product, quantity=5)
    assert checkout_one(client, auth, world, product, quantity=2).json()["lines"][0]["prescription_id"] == own.id


def test_prescription_written_through_the_api_opens_checkout(client, auth, world, make_product):
    product = make_product(prescription_only=True)
    assert checkout_one(client, auth, world, product).status_code == 422
    client.post(f"/patients/{world.patient.id}/prescriptions", headers=auth(world.clinician),
                json={"product_id": product.id, "quantity": 1, "valid_until": in_days(7).isoformat()})
    assert checkout_one(client, auth, world, product, buyer=world.clinician).status_code == 201


def test_commerce_reads_and_writes_are_audited(client, auth, world, make_product, place_order):
    product = make_product()
    order = place_order(world.patient_user, world.patient, (product, 1))
    client.get(f"/orders/{order['id']}", headers=auth(world.clinician))
    client.get(f"/patients/{world.patient.id}/prescriptions", headers=auth(world.caregiver))
    records = client.get("/audit", params={"patient_id": world.patient.id}, headers=auth(world.admin)).json()
    seen = {(r["actor_id"], r["action"], r["resource_type"]) for r in records}
    assert {(world.patient_user.id, "update", "cart"), (world.patient_user.id, "create", "order"),
            (world.clinician.id, "read", "order"), (world.caregiver.id, "read", "prescription")} <= seen


# --------------------------------------------------------------------------------------------- dressing advice


def test_advice_needs_an_assessment_first(client, auth, world):
    response = client.get(f"/wounds/{world.wound.id}/dressings", headers=auth(world.clinician))
    assert response.status_code == 404 and "assess" in response.json()["error"]


def test_advice_from_the_latest_assessment_with_products_in_stock(client, auth, world, make_product,
                                                                  make_assessment):
    make_assessment(world.wound, world.clinician, captured_at=utcnow() - timedelta(days=14), max_depth_mm=1.0,
                    exudate="low", tissue={"epithelialising": 0.8})
    latest = make_assessment(world.wound, world.clinician, max_depth_mm=8.0, exudate="heavy",
                             tissue={"granulation": 0.6, "slough": 0.4}, metadata={"infection": True})
    silver = make_product(dressing_type="antimicrobial", prescription_only=True, name="Silver alginate")
    make_product(dressing_type="alginate", on_hand=0, name="Empty shelf")
    make_product(dressing_type="alginate", active=False, name="Stopped")
    rope = make_product(dressing_type="alginate", name="Alginate rope")
    advice = client.get(f"/wounds/{world.wound.id}/dressings", headers=auth(world.patient_user))
    assert advice.status_code == 200
    body = advice.json()
    assert body["assessment_id"] == latest.id
    ranked = [r["dressing_type"] for r in body["recommendations"]]
    assert ranked == ["antimicrobial", "foam", "alginate"]
    avoided = {a["dressing_type"] for a in body["avoid"]}
    assert {"film", "hydrogel", "hydrocolloid"} <= avoided and not avoided & set(ranked)
    products = {r["dressing_type"]: r["products"] for r in body["recommendations"]}
    assert [p["id"] for p in products["alginate"]] == [rope.id]
    assert products["antimicrobial"][0]["id"] == silver.id and products["antimicrobial"][0]["prescription_only"]
    assert all(r["reasons"] for r in body["recommendations"])
    assert client.get(f"/wounds/{world.other_wound.id}/dressings", headers=auth(world.patient_user)).status_code \
        == 404
    records = client.get("/audit", params={"patient_id": world.patient.id}, headers=auth(world.admin)).json()
    assert (world.patient_user.id, "dressing_advice") in {(r["actor_id"], r["resource_type"]) for r in records}
