from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from platform_api.commerce.models import DressingType, OrderStatus

MinorUnits = Annotated[int, Field(ge=0, le=100_000_000)]  # cents and the like: at most a million units
CurrencyCode = Annotated[str, Field(pattern="^[A-Z]{3}$")]


class ProductCreate(BaseModel):
    sku: str = Field(min_length=1, max_length=40)
    name: str = Field(min_length=1, max_length=120)
    dressing_type: DressingType
    size: str = Field(min_length=1, max_length=40, examples=["10x10 cm"])
    prescription_only: bool = False
    price_minor: MinorUnits
    currency: CurrencyCode | None = Field(None, description="the API's default currency when unset")
    active: bool = True
    on_hand: int = Field(0, ge=0, le=1_000_000_000)


class ProductUpdate(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=120)
    dressing_type: DressingType | None = None
    size: str | None = Field(None, min_length=1, max_length=40)
    prescription_only: bool | None = None
    price_minor: MinorUnits | None = None
    currency: CurrencyCode | None = None
    active: bool | None = None


class ProductRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    sku: str
    name: str
    dressing_type: DressingType
    size: str
    prescription_only: bool
    price_minor: int
    currency: str
    active: bool
    on_hand: int
    created_at: datetime


class InventorySet(BaseModel):
    on_hand: int = Field(ge=0, le=1_000_000_000)


class PrescriptionCreate(BaseModel):
    product_id: str | None = Field(None, min_length=1, max_length=36)
    dressing_type: DressingType | None = None
    quantity: int = Field(gt=0, le=10_000)
    valid_until: AwareDatetime
    instructions: str = Field("", max_length=500)

    @model_validator(mode="after")
    def _product_or_type(self) -> PrescriptionCreate:
        if (self.product_id is None) == (self.dressing_type is None):
            raise ValueError("name either product_id or dressing_type")
        return self


class PrescriptionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    patient_id: str
    prescriber_id: str
    product_id: str | None
    dressing_type: DressingType | None
    quantity: int
    dispensed: int
    valid_until: datetime
    instructions: str
    revoked_at: datetime | None
    created_at: datetime


class CartItemSet(BaseModel):
    quantity: int = Field(gt=0, le=1000)


class CartLineRead(BaseModel):
    product: ProductRead
    quantity: int
    line_total_minor: int


class CartRead(BaseModel):
    patient_id: str
    items: list[CartLineRead]
    total_minor: int
    currency: str | None  # None while the cart is empty


class OrderLineRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    product_id: str
    sku: str
    name: str
    quantity: int
    unit_price_minor: int
    prescription_id: str | None


class OrderRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    patient_id: str
    placed_by: str
    status: OrderStatus
    total_minor: int
    currency: str
    lines: list[OrderLineRead]
    created_at: datetime
    paid_at: datetime | None
    cancelled_at: datetime | None


class DressingAdvice(BaseModel):
    dressing_type: DressingType
    score: int
    reasons: list[str]
    products: list[ProductRead]


class AvoidAdvice(BaseModel):
    dressing_type: DressingType
    reasons: list[str]


class DressingAdviceRead(BaseModel):
    wound_id: str
    assessment_id: str
    assessed_at: datetime
    recommendations: list[DressingAdvice]
    avoid: list[AvoidAdvice]
    note: str = "decision support from the latest assessment; the treating clinician decides"
