"""Factories for the commerce and payments tests: products with stock, prescriptions, assessments, orders.
Import the fixtures into a test module (`from tests.platform_api.commerce_factories import ...`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from itertools import count

import pytest

from platform_api.assessments.models import Assessment, Scan
from platform_api.auth.models import User
from platform_api.commerce.models import Inventory, Prescription, Product
from platform_api.db import utcnow
from platform_api.patients.models import Patient, Wound

_skus = count()


def in_days(days: float) -> datetime:
    return utcnow() + timedelta(days=days)


@pytest.fixture
def make_product(session) -> Callable[..., Product]:
    def make(*, on_hand: int = 10, dressing_type: str = "foam", prescription_only: bool = False,
             price_minor: int = 1250, currency: str = "EUR", **fields) -> Product:
        number = next(_skus)
        values = {"sku": f"TEST-{number:05d}", "name": f"Test {dressing_type} {number}", "size": "10x10 cm"}
        product = Product(**{**values, **fields}, dressing_type=dressing_type, prescription_only=prescription_only,
                          price_minor=price_minor, currency=currency)
        product.inventory = Inventory(on_hand=on_hand)
        session.add(product)
        session.commit()
        return product

    return make


@pytest.fixture
def make_prescription(session) -> Callable[..., Prescription]:
    """A prescription row as the database would hold it (the API's own checks are tested through the API)."""

    def make(patient: Patient, prescriber: User, *, product: Product | None = None, dressing_type: str | None = None,
             quantity: int = 10, valid_until: datetime | None = None, revoked: bool = False) -> Prescription:
        prescription = Prescription(patient_id=patient.id, prescriber_id=prescriber.id,
                                    product_id=product.id if product else None, dressing_type=dressing_type,
                                    quantity=quantity, valid_until=valid_until or in_days(30),
                                    revoked_at=utcnow() if revoked else None)
        session.add(prescription)
        session.commit()
        return prescription

    return make


@pytest.fixture
def make_assessment(session) -> Callable[..., Assessment]:
    def make(wound: Wound, uploaded_by: User, *, metadata: dict | None = None, captured_at: datetime | None = None,
             **fields) -> Assessment:
        captured_at = captured_at or utcnow()
        scan = Scan(wound_id=wound.id, patient_id=wound.patient_id, uploaded_by=uploaded_by.id,
                    captured_at=captured_at, scan_key=f"scans/{wound.id}/scan.ply", scan_format="ply",
                    scan_bytes=10, scan_sha256="0" * 64, scan_metadata=metadata, status="assessed")
        session.add(scan)
        session.flush()
        values = {"max_depth_mm": 3.0, "area_cm2": 4.0, "tissue": {"granulation": 1.0}, "exudate": "low",
                  "flags": [], "model_versions": {}, "result": {}}
        assessment = Assessment(scan_id=scan.id, wound_id=wound.id, patient_id=wound.patient_id,
                                captured_at=captured_at, **{**values, **fields})
        session.add(assessment)
        session.commit()
        return assessment

    return make


@pytest.fixture
def place_order(client, auth) -> Callable[..., dict]:
    """Put products in a patient's cart and check out through the API; the order as the API returned it."""

    def place(buyer: User, patient: Patient, *lines: tuple[Product, int]) -> dict:
        headers = auth(buyer)
        for product, quantity in lines:
            put = client.put(f"/patients/{patient.id}/cart/items/{product.id}", json={"quantity": quantity},
                             headers=headers)
            assert put.status_code == 200, put.text
        order = client.post(f"/patients/{patient.id}/orders", headers=headers)
        assert order.status_code == 201, order.text
        return order.json()

    return place
