"""Carts and orders, and what payments needs of an order.

A checkout is one transaction: every prescription-only line draws on a valid prescription, every line takes
its stock with one conditional UPDATE (in product order, so concurrent checkouts lock rows in the same order),
and any refusal rolls all of it back. Cancelling an unpaid order puts stock and prescriptions back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from platform_api.audit.service import record, record_read
from platform_api.auth.models import Role
from platform_api.commerce import prescriptions
from platform_api.commerce.models import CartItem, Inventory, Order, OrderLine, OrderStatus, Product
from platform_api.commerce.schemas import CartLineRead, CartRead, ProductRead
from platform_api.db import new_id, utcnow
from platform_api.errors import Conflict, DomainError, Forbidden, Invalid, NotFound
from platform_api.patients.service import can_see, visible_patient

if TYPE_CHECKING:
    from platform_api.deps import Caller

NO_SYNC = {"synchronize_session": False}
BUYERS = (Role.patient, Role.clinician, Role.caregiver)


def _buyer(session: Session, caller: Caller, patient_id: str) -> None:
    visible_patient(session, caller=caller, patient_id=patient_id)
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


def checkout(session: Session, *, caller: Caller, patient_id: str) -> Order:
    """Turn the cart into an order awaiting payment, all or nothing (422 prescription, 409 out of stock)."""
    _buyer(session, caller, patient_id)
    items = session.execute(select(CartItem.quantity, Product).join(Product, Product.id == CartItem.product_id)
                            .where(CartItem.patient_id == patient_id).order_by(Product.id)).all()
    _check_cart(items)
    # the id is set here and the lines hang on the order, so the inserts go in one flush at commit and the reply
    # needs no second read of the lines
    order = Order(id=new_id(), patient_id=patient_id, placed_by=caller.user.id, status=OrderStatus.pending_payment,
                  currency=items[0][1].currency, total_minor=sum(q * p.price_minor for q, p in items), lines=[])
    session.add(order)
    try:
        session.execute(delete(CartItem).where(CartItem.patient_id == patient_id), execution_options=NO_SYNC)
        record(session, caller=caller, action="create", resource_type="order", resource_id=order.id,
               patient_id=patient_id)
        # stock last: the inventory rows stay locked from here to the commit only
        for quantity, product in items:
            order.lines.append(_line(session, order, product, quantity))
        session.commit()
    except (DomainError, IntegrityError):
        session.rollback()  # the stock and prescriptions taken by earlier lines go back
        raise
    return order


def _check_cart(items: list) -> None:
    if not items:
        raise Invalid("the cart is empty")
    if stopped := [product for _, product in items if not product.active]:
        raise Invalid(f"{stopped[0].name} ({stopped[0].sku}) is no longer sold; take it out of the cart")
    if len({product.currency for _, product in items}) > 1:
        raise Invalid("the cart mixes currencies; one order is paid in one currency")


def _line(session: Session, order: Order, product: Product, quantity: int) -> OrderLine:
    prescription_id = None
    if product.prescription_only:
        prescription_id = prescriptions.draw(session, patient_id=order.patient_id, product=product, quantity=quantity)
    take = (update(Inventory).where(Inventory.product_id == product.id, Inventory.on_hand >= quantity)
            .values(on_hand=Inventory.on_hand - quantity, updated_at=utcnow()))
    if session.execute(take, execution_options=NO_SYNC).rowcount != 1:
        raise Conflict(f"out of stock: {product.name} ({product.sku}) has fewer than {quantity} on hand")
    return OrderLine(order_id=order.id, product_id=product.id, sku=product.sku, name=product.name,
                     quantity=quantity, unit_price_minor=product.price_minor, prescription_id=prescription_id)


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


def _move(session: Session, order_id: str, old: OrderStatus, new: OrderStatus, **values) -> None:
    moved = session.execute(update(Order).where(Order.id == order_id, Order.status == old)
                            .values(status=new, **values), execution_options=NO_SYNC)
    if moved.rowcount != 1:
        raise Conflict(f"order {order_id} is no longer {old.value}")
