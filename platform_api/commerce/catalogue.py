"""The product catalogue, its stock, and dressing advice for a wound (the rules in dressings.py, the products
in stock here). Products name no patient; the advice does, so it is audited."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from platform_api.assessments.models import Assessment, Scan
from platform_api.audit.service import record_read
from platform_api.commerce.dressings import Findings, has_infection_signs, recommend
from platform_api.commerce.models import DressingType, Inventory, Product
from platform_api.commerce.schemas import (
    AvoidAdvice,
    DressingAdvice,
    DressingAdviceRead,
    ProductCreate,
    ProductRead,
    ProductUpdate,
)
from platform_api.db import utcnow
from platform_api.errors import Conflict, Invalid, NotFound
from platform_api.patients.service import visible_wound

if TYPE_CHECKING:
    from platform_api.deps import Caller

NO_SYNC = {"synchronize_session": False}


def list_products(session: Session, *, dressing_type: DressingType | None, include_inactive: bool,
                  limit: int, offset: int) -> list[Product]:
    """Products by name; inactive ones only when asked for."""
    query = select(Product).order_by(Product.name, Product.sku)
    if dressing_type is not None:
        query = query.where(Product.dressing_type == dressing_type)
    if not include_inactive:
        query = query.where(Product.active.is_(True))
    return list(session.scalars(query.limit(limit).offset(offset)).unique())


def get_product(session: Session, *, product_id: str) -> Product:
    """One product, active or not."""
    product = session.get(Product, product_id)
    if product is None:
        raise NotFound(f"no product {product_id}")
    return product


def create_product(session: Session, *, data: ProductCreate, default_currency: str) -> Product:
    """A new product with its stock row (admins)."""
    values = data.model_dump(exclude={"on_hand", "currency"})
    product = Product(**values, currency=data.currency or default_currency)
    product.inventory = Inventory(on_hand=data.on_hand)
    session.add(product)
    try:
        session.commit()
    except IntegrityError as e:
        session.rollback()
        raise Conflict(f"a product with the SKU {data.sku} exists already") from e
    return product


def update_product(session: Session, *, product_id: str, data: ProductUpdate) -> Product:
    """Change a product's details (admins); orders keep what they were sold at."""
    product = get_product(session, product_id=product_id)
    for name, value in data.model_dump(exclude_unset=True).items():
        if value is None:
            raise Invalid(f"{name} cannot be null")
        setattr(product, name, value)
    session.commit()
    return product


def set_inventory(session: Session, *, product_id: str, on_hand: int) -> Product:
    """Set the stock on hand after a count or a delivery (admins)."""
    product = get_product(session, product_id=product_id)
    if product.inventory is None:
        product.inventory = Inventory(on_hand=on_hand)
    else:  # one statement, so a checkout that took stock meanwhile is overwritten by the count, not mixed into it
        session.execute(update(Inventory).where(Inventory.product_id == product_id)
                        .values(on_hand=on_hand, updated_at=utcnow()), execution_options=NO_SYNC)
    session.commit()
    session.refresh(product.inventory)
    return product


def in_stock(session: Session, *, dressing_type: DressingType) -> list[Product]:
    """Active products of this type with stock on hand, cheapest first."""
    query = (select(Product).join(Inventory).where(Product.dressing_type == dressing_type,
                                                    Product.active.is_(True), Inventory.on_hand > 0)
             .order_by(Product.price_minor, Product.sku))
    return list(session.scalars(query).unique())


def advise(session: Session, *, caller: Caller, wound_id: str) -> DressingAdviceRead:
    """Dressing types for the wound from its latest assessment, with the products in stock for each."""
    wound = visible_wound(session, caller=caller, wound_id=wound_id)
    latest = session.execute(select(Assessment, Scan.scan_metadata).join(Scan, Scan.id == Assessment.scan_id)
                             .where(Assessment.wound_id == wound.id)
                             .order_by(Assessment.captured_at.desc(), Assessment.created_at.desc()).limit(1)).first()
    if latest is None:
        raise NotFound(f"wound {wound_id} has no assessment yet: assess a scan of it first, then ask again")
    assessment, metadata = latest
    use, avoid = recommend(findings(assessment, metadata))
    advice = DressingAdviceRead(
        wound_id=wound.id, assessment_id=assessment.id, assessed_at=assessment.captured_at,
        recommendations=[DressingAdvice(dressing_type=a.dressing_type, score=a.score, reasons=list(a.reasons),
                                    products=[ProductRead.model_validate(p) for p in
                                              in_stock(session, dressing_type=a.dressing_type)]) for a in use],
        avoid=[AvoidAdvice(dressing_type=a.dressing_type, reasons=list(a.reasons)) for a in avoid])
    record_read(session, caller=caller, resource_type="dressing_advice", resource_id=assessment.id,
                patient_id=wound.patient_id)
    return advice


def findings(assessment: Assessment, metadata: dict | None) -> Findings:
    """The numbers the dressing rules read, from an assessment and its scan's metadata."""
    tissue = {str(k): float(v) for k, v in (assessment.tissue or {}).items() if isinstance(v, int | float)}
    exudate = assessment.exudate or (metadata or {}).get("exudate")
    return Findings(max_depth_mm=assessment.max_depth_mm, exudate=str(exudate).lower() if exudate else None,
                    tissue=tissue, infection=has_infection_signs(assessment.flags, metadata))
