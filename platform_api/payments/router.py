from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from platform_api.deps import AdminCaller, CallerDep, SessionDep, SettingsDep
from platform_api.payments import refunds, service, webhooks
from platform_api.payments.idempotency import IdempotencyKey, once
from platform_api.payments.providers import ProviderDep
from platform_api.payments.schemas import IntentCreate, IntentRead, LedgerEntryRead, RefundCreate, WebhookReceipt
from platform_api.settings import Settings

router = APIRouter(prefix="/payments", tags=["payments"])
REPLAY = {"description": "the stored response of the first request with this Idempotency-Key, replayed"}


async def raw_body(request: Request) -> bytes:
    return await request.body()


@router.post("/intents", response_model=IntentRead, status_code=201, responses={402: {"description": "declined"}})
def create_intent(body: IntentCreate, session: SessionDep, caller: CallerDep, provider: ProviderDep,
                  settings: SettingsDep, key: IdempotencyKey) -> JSONResponse:
    """Authorize an order's total (the patient, or staff who can see the patient)."""
    return once(session, caller=caller, settings=settings, key=key, request=body, status=201,
                work=lambda _operation: IntentRead.model_validate(service.create_intent(
                    session, caller=caller, provider=provider, order_id=body.order_id,
                    payment_method=body.payment_method, lease=_lease(settings))))


@router.post("/intents/{intent_id}/capture", response_model=IntentRead)
def capture(intent_id: str, session: SessionDep, caller: CallerDep, provider: ProviderDep, settings: SettingsDep,
            key: IdempotencyKey) -> JSONResponse:
    """Capture an authorized payment; its order becomes paid."""
    return once(session, caller=caller, settings=settings, key=key, request=None, status=200,
                work=lambda _operation: IntentRead.model_validate(service.capture(
                    session, caller=caller, provider=provider, intent_id=intent_id, lease=_lease(settings))))


@router.post("/intents/{intent_id}/refund", response_model=IntentRead)
def refund(intent_id: str, body: RefundCreate, session: SessionDep, caller: AdminCaller, provider: ProviderDep,
           settings: SettingsDep, key: IdempotencyKey) -> JSONResponse:
    """Refund part or all of a captured payment (admins); a full refund marks the order refunded. A refund the
    provider has not finished is reserved (refunding_minor) until its webhook says how it ended."""
    return once(session, caller=caller, settings=settings, key=key, request=body, status=200,
                work=lambda operation: IntentRead.model_validate(refunds.refund(
                    session, caller=caller, provider=provider, intent_id=intent_id, amount_minor=body.amount_minor,
                    operation=operation)))


def _lease(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.payment_lease_s)


@router.get("/intents/{intent_id}", response_model=IntentRead)
def get_intent(intent_id: str, session: SessionDep, caller: CallerDep) -> IntentRead:
    """One payment intent."""
    return service.get_intent(session, caller=caller, intent_id=intent_id)


@router.get("/ledger", response_model=list[LedgerEntryRead])
def list_ledger(session: SessionDep, caller: AdminCaller,
                intent_id: Annotated[str | None, Query(min_length=1, max_length=36)] = None,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> list[LedgerEntryRead]:
    """The double-entry ledger, oldest first (admins)."""
    return service.list_ledger(session, caller=caller, intent_id=intent_id, limit=limit, offset=offset)


@router.post("/webhooks/{provider}", response_model=WebhookReceipt)
def webhook(provider: Literal["sandbox", "stripe"], request: Request, body: Annotated[bytes, Depends(raw_body)],
            session: SessionDep, settings: SettingsDep) -> WebhookReceipt:
    """A payment provider's event, signed with the webhook secret; each event id is processed once."""
    header = request.headers.get(webhooks.SIGNATURE_HEADERS[provider])
    event = webhooks.verify(provider, body, header, settings.webhook_secret)
    return WebhookReceipt(duplicate=not webhooks.receive(session, provider=provider, event=event))
