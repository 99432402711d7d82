"""The dressing catalogue, its stock, prescriptions, carts and orders."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Enum, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from platform_api.db import Base, IdMixin, utcnow


class DressingType(enum.StrEnum):
    foam = "foam"
    alginate = "alginate"
    hydrocolloid = "hydrocolloid"
    hydrogel = "hydrogel"
    film = "film"
    antimicrobial = "antimicrobial"


class OrderStatus(enum.StrEnum):
    pending_payment = "pending_payment"
    paid = "paid"
    cancelled = "cancelled"
    refunded = "refunded"


def _dressing_type() -> Enum:
    return Enum(DressingType, native_enum=False, length=16)


class Product(IdMixin, Base):
    """A dressing for sale; money is integer minor units (cents) with its ISO currency."""

    __tablename__ = "products"
    __table_args__ = (CheckConstraint("price_minor >= 0", name="price_not_negative"),)

    sku: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    dressing_type: Mapped[DressingType] = mapped_column(_dressing_type(), index=True)
    size: Mapped[str] = mapped_column(String(40))  # e.g. "10x10 cm"
    prescription_only: Mapped[bool] = mapped_column(default=False)
    price_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    active: Mapped[bool] = mapped_column(default=True)
    inventory: Mapped[Inventory | None] = relationship(lazy="joined")

    @property
    def on_hand(self) -> int:
        return self.inventory.on_hand if self.inventory else 0


class Inventory(Base):
    """Stock on hand of one product; taken only by conditional UPDATEs, and the CHECK forbids going below zero."""

    __tablename__ = "inventory"
    __table_args__ = (CheckConstraint("on_hand >= 0", name="on_hand_not_negative"),)

    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"), primary_key=True)
    on_hand: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Prescription(IdMixin, Base):
    """A clinician's prescription of a product, or of any product of a dressing type, for one patient.

    `dispensed` counts what checkouts took against `quantity`; cancelling an order gives it back.
    """

    __tablename__ = "prescriptions"
    __table_args__ = (
        CheckConstraint("(product_id IS NULL) <> (dressing_type IS NULL)", name="product_or_type"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("dispensed >= 0 AND dispensed <= quantity", name="dispensed_within_quantity"),
    )

    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), index=True)
    prescriber_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    product_id: Mapped[str | None] = mapped_column(ForeignKey("products.id"))
    dressing_type: Mapped[DressingType | None] = mapped_column(_dressing_type())
    quantity: Mapped[int]
    dispensed: Mapped[int] = mapped_column(default=0)
    valid_until: Mapped[datetime]
    instructions: Mapped[str] = mapped_column(String(500), default="")
    revoked_at: Mapped[datetime | None]
    revoked_by: Mapped[str | None] = mapped_column(ForeignKey("users.id"))


class CartItem(IdMixin, Base):
    """One product in a patient's cart (one row per product; putting it again sets the quantity)."""

    __tablename__ = "cart_items"
    __table_args__ = (UniqueConstraint("patient_id", "product_id"),
                      CheckConstraint("quantity > 0", name="quantity_positive"))

    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), index=True)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"))
    quantity: Mapped[int]
    added_by: Mapped[str] = mapped_column(ForeignKey("users.id"))


class Order(IdMixin, Base):
    __tablename__ = "orders"
    __table_args__ = (CheckConstraint("total_minor >= 0", name="total_not_negative"),)

    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), index=True)
    placed_by: Mapped[str] = mapped_column(ForeignKey("users.id"))
    status: Mapped[OrderStatus] = mapped_column(Enum(OrderStatus, native_enum=False, length=16),
                                                default=OrderStatus.pending_payment)
    total_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    paid_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    lines: Mapped[list[OrderLine]] = relationship(order_by="OrderLine.sku", lazy="selectin")


class OrderLine(IdMixin, Base):
    """A product as it was sold: name, SKU and price are copied, so catalogue edits leave orders alone."""

    __tablename__ = "order_lines"
    __table_args__ = (CheckConstraint("quantity > 0", name="quantity_positive"),)

    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), index=True)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"))
    sku: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(120))
    quantity: Mapped[int]
    unit_price_minor: Mapped[int] = mapped_column(BigInteger)
    prescription_id: Mapped[str | None] = mapped_column(ForeignKey("prescriptions.id"))
