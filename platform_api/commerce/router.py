from __future__ import annotations

from fastapi import APIRouter

from platform_api.auth.models import Role
from platform_api.commerce import catalogue, prescriptions, service
from platform_api.commerce.models import DressingType
from platform_api.commerce.schemas import (
    CartItemSet,
    CartRead,
    DressingAdviceRead,
    InventorySet,
    OrderRead,
    PrescriptionCreate,
    PrescriptionRead,
    ProductCreate,
    ProductRead,
    ProductUpdate,
)
from platform_api.deps import AdminCaller, CallerDep, Limit, Offset, SessionDep, SettingsDep, WorkDep

router = APIRouter(tags=["commerce"])


@router.get("/products", response_model=list[ProductRead])
def list_products(session: SessionDep, caller: CallerDep, dressing_type: DressingType | None = None,
                  include_inactive: bool = False, limit: Limit = 100, offset: Offset = 0) -> list[ProductRead]:
    """The catalogue, optionally of one dressing type (inactive products: admins only)."""
    return catalogue.list_products(session, dressing_type=dressing_type, limit=limit, offset=offset,
                                   include_inactive=include_inactive and caller.role == Role.admin)


@router.get("/products/{product_id}", response_model=ProductRead)
def get_product(product_id: str, session: SessionDep, _caller: CallerDep) -> ProductRead:
    """One product with its stock on hand."""
    return catalogue.get_product(session, product_id=product_id)


@router.post("/products", response_model=ProductRead, status_code=201)
def create_product(body: ProductCreate, session: SessionDep, settings: SettingsDep, _admin: AdminCaller) -> ProductRead:
    """Add a product to the catalogue (admins)."""
    return catalogue.create_product(session, data=body, default_currency=settings.default_currency)


@router.patch("/products/{product_id}", response_model=ProductRead)
def update_product(product_id: str, body: ProductUpdate, session: SessionDep, _admin: AdminCaller) -> ProductRead:
    """Change a product (admins); orders keep the name and price they were placed at."""
    return catalogue.update_product(session, product_id=product_id, data=body)


@router.put("/products/{product_id}/inventory", response_model=ProductRead)
def set_inventory(product_id: str, body: InventorySet, session: SessionDep, _admin: AdminCaller) -> ProductRead:
    """Set a product's stock on hand (admins)."""
    return catalogue.set_inventory(session, product_id=product_id, on_hand=body.on_hand)


@router.post("/patients/{patient_id}/prescriptions", response_model=PrescriptionRead, status_code=201)
def prescribe(patient_id: str, body: PrescriptionCreate, session: SessionDep, caller: CallerDep) -> PrescriptionRead:
    """Prescribe a product or a dressing type (a clinician on the patient's care team)."""
    return prescriptions.create(session, caller=caller, patient_id=patient_id, data=body)


@router.get("/patients/{patient_id}/prescriptions", response_model=list[PrescriptionRead])
def list_prescriptions(patient_id: str, session: SessionDep, caller: CallerDep) -> list[PrescriptionRead]:
    """The patient's prescriptions, revoked and expired ones included."""
    return prescriptions.list_for_patient(session, caller=caller, patient_id=patient_id)


@router.post("/prescriptions/{prescription_id}/revoke", response_model=PrescriptionRead)
def revoke_prescription(prescription_id: str, session: SessionDep, caller: CallerDep) -> PrescriptionRead:
    """Revoke a prescription (a clinician on the patient's care team)."""
    return prescriptions.revoke(session, caller=caller, prescription_id=prescription_id)


@router.get("/patients/{patient_id}/cart", response_model=CartRead)
def get_cart(patient_id: str, session: SessionDep, caller: CallerDep) -> CartRead:
    """The patient's cart."""
    return service.get_cart(session, caller=caller, patient_id=patient_id)


@router.put("/patients/{patient_id}/cart/items/{product_id}", response_model=CartRead)
def put_cart_item(patient_id: str, product_id: str, body: CartItemSet, session: SessionDep,
                  caller: CallerDep) -> CartRead:
    """Put a product in the patient's cart with this quantity."""
    return service.put_item(session, caller=caller, patient_id=patient_id, product_id=product_id,
                            quantity=body.quantity)


@router.delete("/patients/{patient_id}/cart/items/{product_id}", response_model=CartRead)
def remove_cart_item(patient_id: str, product_id: str, session: SessionDep, caller: CallerDep) -> CartRead:
    """Take a product out of the patient's cart."""
    return service.remove_item(session, caller=caller, patient_id=patient_id, product_id=product_id)


@router.post("/patients/{patient_id}/orders", response_model=OrderRead, status_code=201)
async def checkout(patient_id: str, work: WorkDep) -> OrderRead:
    """Check the cart out into an order awaiting payment (prescriptions checked, stock taken)."""
    return await work.run(service.checkout, OrderRead, patient_id=patient_id)


@router.get("/patients/{patient_id}/orders", response_model=list[OrderRead])
def list_orders(patient_id: str, session: SessionDep, caller: CallerDep, limit: Limit = 100,
                offset: Offset = 0) -> list[OrderRead]:
    """The patient's orders, newest first."""
    return service.list_orders(session, caller=caller, patient_id=patient_id, limit=limit, offset=offset)


@router.get("/orders/{order_id}", response_model=OrderRead)
def get_order(order_id: str, session: SessionDep, caller: CallerDep) -> OrderRead:
    """One order."""
    return service.get_order(session, caller=caller, order_id=order_id)


@router.post("/orders/{order_id}/cancel", response_model=OrderRead)
def cancel_order(order_id: str, session: SessionDep, caller: CallerDep) -> OrderRead:
    """Cancel an unpaid order; its stock goes back on the shelf."""
    return service.cancel(session, caller=caller, order_id=order_id)


@router.get("/wounds/{wound_id}/dressings", response_model=DressingAdviceRead)
def dressing_advice(wound_id: str, session: SessionDep, caller: CallerDep) -> DressingAdviceRead:
    """Dressing types for the wound from its latest assessment, with their reasons and the products in stock."""
    return catalogue.advise(session, caller=caller, wound_id=wound_id)
