from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from platform_api.payments.models import IntentStatus, Side


class IntentCreate(BaseModel):
    order_id: str = Field(min_length=1, max_length=36)
    payment_method: str = Field("pm_card_visa", min_length=1, max_length=255,
                                description="the provider's payment method; the sandbox declines "
                                            "pm_card_chargeDeclined")


class RefundCreate(BaseModel):
    amount_minor: int = Field(gt=0, le=100_000_000_000)


class IntentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    order_id: str
    patient_id: str
    provider: str
    provider_ref: str | None
    status: IntentStatus
    amount_minor: int
    currency: str
    captured_minor: int
    refunded_minor: int
    refunding_minor: int = Field(description="refunds asked for that the provider has not finished")
    failure_message: str | None
    created_at: datetime
    updated_at: datetime


class LedgerEntryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    posting_id: str
    intent_id: str
    kind: str
    account: str
    side: Side
    amount_minor: int
    currency: str
    provider_ref: str | None
    created_at: datetime


class WebhookReceipt(BaseModel):
    received: bool = True
    duplicate: bool
