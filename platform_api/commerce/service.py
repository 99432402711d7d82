"""Carts and orders, and what payments needs of an order.

A checkout is one transaction: every prescription-only line draws on a valid prescription, every line takes
its stock with one conditional UPDATE (in product order, so concurrent checkouts lock rows in the same order),
and any refusal rolls all of it back. Cancelling an unpaid order puts stock and prescriptions back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Row, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from platform_api.audit.service import insert_record, record, record_read
from platform_api.auth.models import Role
from platform_api.commerce import prescriptions
from platform_api.commerce.models import CartItem, Inventory, Order, OrderLine, OrderStatus, Product
from platform_api.commerce.schemas import CartLineRead, CartRead, OrderRead, ProductRead
from platform_api.db import new_id, utcnow
from platform_api.errors import Conflict, DomainError, Forbidden, Invalid, NotFound
from platform_api.patients.service import can_see, require_visible_patient, visible_patient

if TYPE_CHECKING:
    from platform_api.deps import Caller

NO_SYNC = {"synchronize_session": False}
BUYERS = (Role.patient, Role.clinician, Role.caregiver)


def _buyer(session: Session, caller: Caller, patient_id: str) -> None:
    require_visible_patient(session, caller=caller, patient_id=patient_id)
    if caller.role not in BUYERS:
        raise Forbidden("a patient orders for themself, or a clinician or caregiver for a patient in their care")


# ------------------------------------------------------------------------------------------------------ cart


def get_cart(session: Session, *, caller: Caller, patient_id: str) -> CartRead:
    """The patient's cart with its running total."""
    visible_patient(session, caller=caller, patient_id=patient_id)
    cart = _cart(session, patient_id)
    record_read(session, caller=caller, resource_type="cart", resource_id=None, patient_id=patient_id)
    return cart


def _cart(session: Session, patient_id: str) -> CartRead:
    rows = session.execute(select(CartItem.quantity, Product).join(Product, Product.id == CartItem.product_id)
                           .where(CartItem.patient_id == patient_id).order_by(Product.name, Product.sku)).all()
    lines = [CartLineRead(product=ProductRead.model_validate(product), quantity=quantity,
                          line_total_minor=quantity * product.price_minor) for quantity, product in rows]
    currencies = {line.product.currency for line in lines}
    return CartRead(patient_id=patient_id, items=lines, total_minor=sum(line.line_total_minor for line in lines),
                    currency=currencies.pop() if len(currencies) == 1 else None)


def put_item(session: Session, *, caller: Caller, patient_id: str, product_id: str, quantity: int) -> CartRead:
    """Put a product in the cart with this quantity (replacing the quantity if it is there already)."""
    _buyer(session, caller, patient_id)
    product = session.get(Product, product_id)
    if product is None or not product.active:
        raise NotFound(f"no product {product_id} on sale")
    where = (CartItem.patient_id == patient_id, CartItem.product_id == product_id)
    change = update(CartItem).where(*where).values(quantity=quantity, added_by=caller.user.id)
    if session.execute(change, execution_options=NO_SYNC).rowcount == 0:
        try:
            with session.begin_nested():
                session.add(CartItem(patient_id=patient_id, product_id=product_id, quantity=quantity,
                                     added_by=caller.user.id))
        except IntegrityError:  # a concurrent request added it first; ours is the later word
            session.execute(change, execution_options=NO_SYNC)
    record(session, caller=caller, action="update", resource_type="cart", resource_id=product_id,
           patient_id=patient_id)
    session.commit()
    return _cart(session, patient_id)


def remove_item(session: Session, *, caller: Caller, patient_id: str, product_id: str) -> CartRead:
    """Take a product out of the cart."""
    _buyer(session, caller, patient_id)
    session.execute(delete(CartItem).where(CartItem.patient_id == patient_id, CartItem.product_id == product_id),
                    execution_options=NO_SYNC)
    record(session, caller=caller, action="delete", resource_type="cart", resource_id=product_id,
           patient_id=patient_id)
    session.commit()
    return _cart(session, patient_id)


# ---------------------------------------------------------------------------------------------------- orders


def checkout(session: Session, *, caller: Caller, patient_id: str) -> OrderRead:
    """Turn the cart into an order awaiting payment, all or nothing (422 prescription, 409 out of stock)."""
    _buyer(session, caller, patient_id)
    items = session.execute(_CART, {"patient_id": patient_id}).all()
    _check_cart(items)
    order = {"id": new_id(), "patient_id": patient_id, "placed_by": caller.user.id,
             "status": OrderStatus.pending_payment, "currency": items[0].currency,
             "total_minor": sum(item.quantity * item.price_minor for item in items), "created_at": utcnow(),
             "paid_at": None, "cancelled_at": None}
    try:
        session.execute(_NEW_ORDER, order)
        session.execute(_EMPTY_CART, {"patient_id": patient_id})
        insert_record(session, caller=caller, action="create", resource_type="order", resource_id=order["id"],
                      patient_id=patient_id)
        lines = [_line(session, order, item) for item in items]
        # stock last: the inventory rows, which concurrent checkouts share, stay locked from here to the commit only
        for item in items:
            _take_stock(session, item)
        session.commit()
    except (DomainError, IntegrityError):
        session.rollback()  # the stock and prescriptions taken by earlier lines go back
        raise
    return OrderRead(**order, lines=lines)


# Checkout is the busiest write with the most statements: they are built once, in Core (no unit of work)
_ITEMS, _PRODUCTS, _STOCK = CartItem.__table__, Product.__table__, Inventory.__table__
_CART = (select(_ITEMS.c.quantity, _PRODUCTS.c.id, _PRODUCTS.c.sku, _PRODUCTS.c.name, _PRODUCTS.c.dressing_type,
                _PRODUCTS.c.prescription_only, _PRODUCTS.c.price_minor, _PRODUCTS.c.currency, _PRODUCTS.c.active)
         .join_from(_ITEMS, _PRODUCTS, _PRODUCTS.c.id == _ITEMS.c.product_id)
         .where(_ITEMS.c.patient_id == bindparam("patient_id")).order_by(_PRODUCTS.c.id))
_NEW_ORDER = insert(Order.__table__)
_EMPTY_CART = delete(_ITEMS).where(_ITEMS.c.patient_id == bindparam("patient_id"))
_TAKE_STOCK = (update(_STOCK)
               .where(_STOCK.c.product_id == bindparam("product"), _STOCK.c.on_hand >= bindparam("quantity"))
               .values(on_hand=_STOCK.c.on_hand - bindparam("quantity"), updated_at=bindparam("now")))
_NEW_LINE = insert(OrderLine.__table__)


def _check_cart(items: list[Row]) -> None:
    if not items:
        raise Invalid("the cart is empty")
    if stopped := [item for item in items if not item.active]:
        raise Invalid(f"{stopped[0].name} ({stopped[0].sku}) is no longer sold; take it out of the cart")
    if len({item.currency for item in items}) > 1:
        raise Invalid("the cart mixes currencies; one order is paid in one currency")


def _line(session: Session, order: dict, item: Row) -> dict:
    """Insert the order line of a cart item (drawing on a prescription when it needs one); its values."""
    prescription_id = None
    if item.prescription_only:
        prescription_id = prescriptions.draw(session, patient_id=order["patient_id"], product=item,
                                             quantity=item.quantity)
    line = {"id": new_id(), "order_id": order["id"], "product_id": item.id, "sku": item.sku, "name": item.name,
            "quantity": item.quantity, "unit_price_minor": item.price_minor, "prescription_id": prescription_id,
            "created_at": utcnow()}
    session.execute(_NEW_LINE, line)
    return line


def _take_stock(session: Session, item: Row) -> None:
    taken = session.execute(_TAKE_STOCK, {"product": item.id, "quantity": item.quantity, "now": utcnow()})
    if taken.rowcount != 1:
        raise Conflict(f"out of stock: {item.name} ({item.sku}) has fewer than {item.quantity} on hand")


def cancel(session: Session, *, caller: Caller, order_id: str) -> Order:
    """Cancel an order that is not paid yet: its stock and prescriptions go back."""
    order = _visible_order(session, caller, order_id)
    if caller.role not in (*BUYERS, Role.admin):
        raise Forbidden("only the patient, their care team or an admin may cancel an order")
    cancelled = session.execute(update(Order).where(Order.id == order.id,
                                                    Order.status == OrderStatus.pending_payment)
                                .values(status=OrderStatus.cancelled, cancelled_at=utcnow()),
                                execution_options=NO_SYNC)
    if cancelled.rowcount != 1:
        raise Conflict(f"order {order.id} is {order.status.value}; only an unpaid order can be cancelled")
    for line in sorted(order.lines, key=lambda line: line.product_id):
        session.execute(update(Inventory).where(Inventory.product_id == line.product_id)
                        .values(on_hand=Inventory.on_hand + line.quantity, updated_at=utcnow()),
                        execution_options=NO_SYNC)
        if line.prescription_id:
            prescriptions.give_back(session, prescription_id=line.prescription_id, quantity=line.quantity)
    record(session, caller=caller, action="update", resource_type="order", resource_id=order.id,
           patient_id=order.patient_id)
    session.commit()
    session.refresh(order)
    return order


def _visible_order(session: Session, caller: Caller, order_id: str) -> Order:
    order = session.get(Order, order_id)
    if order is None or not can_see(session, user=caller.user, patient_id=order.patient_id):
        raise NotFound(f"no order {order_id}")
    return order


def get_order(session: Session, *, caller: Caller, order_id: str) -> Order:
    """One order with its lines."""
    order = _visible_order(session, caller, order_id)
    record_read(session, caller=caller, resource_type="order", resource_id=order.id, patient_id=order.patient_id)
    return order


def list_orders(session: Session, *, caller: Caller, patient_id: str, limit: int, offset: int) -> list[Order]:
    """The patient's orders, newest first."""
    visible_patient(session, caller=caller, patient_id=patient_id)
    orders = list(session.scalars(select(Order).where(Order.patient_id == patient_id)
                                  .order_by(Order.created_at.desc(), Order.id).limit(limit).offset(offset)))
    record_read(session, caller=caller, resource_type="order", resource_id=None, patient_id=patient_id)
    return orders


# -------------------------------------------------------------------------------------------- for payments


def order_for_payment(session: Session, *, caller: Caller, order_id: str) -> Order:
    """The order, when the caller may see it and it awaits payment (404, 409 otherwise)."""
    order = _visible_order(session, caller, order_id)
    if order.status != OrderStatus.pending_payment:
        raise Conflict(f"order {order.id} is {order.status.value}, not awaiting payment")
    return order


def mark_paid(session: Session, *, order_id: str) -> None:
    """Pending payment -> paid, as one conditional UPDATE (409 if it was cancelled meanwhile). No commit."""
    _move(session, order_id, OrderStatus.pending_payment, OrderStatus.paid, paid_at=utcnow())


def mark_unpaid(session: Session, *, order_id: str) -> None:
    """Paid -> pending payment again, when the capture that marked it paid failed. No commit."""
    _move(session, order_id, OrderStatus.paid, OrderStatus.pending_payment, paid_at=None)


def mark_refunded(session: Session, *, order_id: str) -> None:
    """Paid -> refunded, once the whole payment went back. No commit."""
    _move(session, order_id, OrderStatus.paid, OrderStatus.refunded)


def mark_refund_reversed(session: Session, *, order_id: str) -> None:
    """Refunded -> paid again, when the provider reversed the refund that completed it. No commit."""
    _move(session, order_id, OrderStatus.refunded, OrderStatus.paid)


def _move(session: Session, order_id: str, old: OrderStatus, new: OrderStatus, **values) -> None:
    moved = session.execute(update(Order).where(Order.id == order_id, Order.status == old)
                            .values(status=new, **values), execution_options=NO_SYNC)
    if moved.rowcount != 1:
        raise Conflict(f"order {order_id} is no longer {old.value}")
