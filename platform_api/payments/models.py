"""Payment intents, their refunds, the double-entry ledger, stored idempotent responses, processed webhook events,
and the sandbox provider's own book of charges and of the idempotency keys it was sent."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, BigInteger, CheckConstraint, Enum, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from platform_api.db import Base, IdMixin, utcnow


class IntentStatus(enum.StrEnum):
    processing = "processing"  # recorded, the provider not yet asked to authorize
    requires_capture = "requires_capture"  # authorized: the amount is held on the card
    capturing = "capturing"  # the provider is being asked to capture
    succeeded = "succeeded"  # captured (partial refunds keep it here)
    refunded = "refunded"  # the whole captured amount went back
    failed = "failed"  # declined, or the provider failed
    canceled = "canceled"  # the authorization was released


class RefundStatus(enum.StrEnum):
    requested = "requested"  # the amount is reserved on the intent (refunding_minor); the provider not yet answered
    pending = "pending"  # the provider took the refund and has not finished it (still reserved)
    succeeded = "succeeded"  # the money went back: refunded_minor and the ledger hold it
    failed = "failed"  # refused, or reversed after it succeeded: neither reserved nor refunded any more


class Side(enum.StrEnum):
    debit = "debit"
    credit = "credit"


class PaymentIntent(IdMixin, Base):
    """One attempt to pay one order; money in integer minor units of `currency`."""

    __tablename__ = "payment_intents"
    __table_args__ = (
        CheckConstraint("captured_minor >= 0 AND captured_minor <= amount_minor", name="captured_within_amount"),
        CheckConstraint("refunded_minor >= 0 AND refunding_minor >= 0 "
                        "AND refunded_minor + refunding_minor <= captured_minor", name="refunds_within_captured"),
    )

    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), index=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), index=True)
    created_by: Mapped[str] = mapped_column(ForeignKey("users.id"))
    # set while the intent may still take money, so an order has at most one such intent (NULLs never collide)
    active_order_id: Mapped[str | None] = mapped_column(ForeignKey("orders.id"), unique=True)
    provider: Mapped[str] = mapped_column(String(16))
    provider_ref: Mapped[str | None] = mapped_column(String(255), index=True)
    status: Mapped[IntentStatus] = mapped_column(Enum(IntentStatus, native_enum=False, length=20))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    captured_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    refunding_minor: Mapped[int] = mapped_column(BigInteger, default=0)  # refunds the provider is still asked for
    failure_message: Mapped[str | None] = mapped_column(String(300))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Refund(IdMixin, Base):
    """One refund of a captured intent, ours or one made at the provider (its dashboard); its status moves only
    forward, by conditional UPDATEs, so each change of money is applied once."""

    __tablename__ = "refunds"
    __table_args__ = (CheckConstraint("amount_minor > 0", name="amount_positive"),)

    intent_id: Mapped[str] = mapped_column(ForeignKey("payment_intents.id"), index=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[RefundStatus] = mapped_column(Enum(RefundStatus, native_enum=False, length=12))
    # the idempotency key we ask the provider under; None for a refund made at the provider
    request_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    provider_ref: Mapped[str | None] = mapped_column(String(255), unique=True)
    failure_message: Mapped[str | None] = mapped_column(String(300))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class LedgerEntry(IdMixin, Base):
    """One side of a double-entry posting; the rows of one `posting_id` balance (debits == credits)."""

    __tablename__ = "ledger_entries"
    __table_args__ = (CheckConstraint("amount_minor > 0", name="amount_positive"),)

    posting_id: Mapped[str] = mapped_column(String(36), index=True)
    intent_id: Mapped[str] = mapped_column(ForeignKey("payment_intents.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # capture, refund, refund_reversal
    account: Mapped[str] = mapped_column(String(40))
    side: Mapped[Side] = mapped_column(Enum(Side, native_enum=False, length=8))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    provider_ref: Mapped[str | None] = mapped_column(String(255))


class IdempotencyRecord(IdMixin, Base):
    """A mutating payment call's key, its request's fingerprint and, once done, the response it got. It expires
    a while after created_at (settings.idempotency_ttl_hours); the index finds the expired ones to purge."""

    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("user_id", "key"), Index("ix_idempotency_records_created_at", "created_at"))

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None]  # None while the first request is still running
    response_body: Mapped[dict | None] = mapped_column(JSON)
    completed_at: Mapped[datetime | None]
    # when the running request took the key: past the lease a retry may take it over (None: older records)
    locked_at: Mapped[datetime | None] = mapped_column(default=utcnow)


class WebhookEvent(IdMixin, Base):
    """A provider's event, processed once: the unique constraint turns a redelivery into a no-op."""

    __tablename__ = "webhook_events"
    __table_args__ = (UniqueConstraint("provider", "event_id"),)

    provider: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(100))
    intent_id: Mapped[str | None] = mapped_column(ForeignKey("payment_intents.id"))


class SandboxCharge(Base):
    """The sandbox provider's side: what it authorized, captured and refunded (as a real provider's books)."""

    __tablename__ = "sandbox_charges"
    __table_args__ = (CheckConstraint("refunded_minor <= captured_minor", name="refunds_within_captured"),)

    ref: Mapped[str] = mapped_column(String(64), primary_key=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(20))  # requires_capture, succeeded
    captured_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    captures: Mapped[int] = mapped_column(default=0)
    refunds: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SandboxRequest(Base):
    """The sandbox provider's memory of idempotency keys, as Stripe's: a repeated key gets the first answer
    again, a key sent with other parameters is refused."""

    __tablename__ = "sandbox_requests"

    idempotency_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    answer: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
