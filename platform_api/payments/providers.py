"""Payment providers: the built-in sandbox (the default) and a thin Stripe adapter, chosen by
settings.payment_provider. Both authorize (hold) an amount, capture it later and refund parts of it.

Services call a provider only right after a commit, outside any open unit of work: the provider's side is
an outside system whose record does not roll back with ours (the sandbox keeps its book in its own table and
commits it at once, as a provider would). Every call carries an idempotency key, and both providers answer a
repeated key with the first answer, so a step our side lost track of (a crash) is asked again safely.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Annotated, NamedTuple, Protocol

from fastapi import Depends
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from platform_api.deps import SessionDep, SettingsDep
from platform_api.errors import DomainError, Upstream
from platform_api.payments.models import RefundStatus, SandboxCharge, SandboxRequest

# Stripe's own test payment methods, so the same names drive both providers in tests and demos
DECLINED_METHODS = frozenset({"pm_card_chargeDeclined", "pm_card_visa_chargeDeclined", "tok_chargeDeclined"})
NO_SYNC = {"synchronize_session": False}
# Stripe's refund statuses -> ours (requires_action: the customer must act; the money has not moved yet)
STRIPE_REFUND_STATUS = {"succeeded": RefundStatus.succeeded, "pending": RefundStatus.pending,
                        "requires_action": RefundStatus.pending, "failed": RefundStatus.failed,
                        "canceled": RefundStatus.failed}


class PaymentDeclined(DomainError):
    """The card or bank refused the payment; the client can try another payment method."""

    status, code = 402, "payment_declined"


class ProviderRefund(NamedTuple):
    ref: str  # the provider's id of the refund
    status: RefundStatus  # succeeded or pending (a refusal raises)


class Provider(Protocol):
    name: str

    def authorize(self, *, amount_minor: int, currency: str, payment_method: str, reference: str,
                  idempotency_key: str) -> str:
        """Hold the amount; the provider's reference of the payment. PaymentDeclined or Upstream."""
        ...

    def capture(self, *, provider_ref: str, amount_minor: int, idempotency_key: str) -> None:
        """Take the held amount. Upstream when the provider refuses or fails."""
        ...

    def refund(self, *, provider_ref: str, amount_minor: int, idempotency_key: str, reference: str) -> ProviderRefund:
        """Give back part or all of what was captured (`reference`: our refund's id, which its events carry)."""
        ...


class SandboxProvider:
    """Deterministic, in-process and offline: every payment method authorizes except Stripe's declining test
    methods; references derive from our ids; its book is the sandbox_charges table, and it remembers each
    idempotency key's answer (sandbox_requests) as Stripe does."""

    name = "sandbox"

    def __init__(self, session: Session) -> None:
        self.session = session

    def authorize(self, *, amount_minor: int, currency: str, payment_method: str, reference: str,
                  idempotency_key: str) -> str:
        if payment_method in DECLINED_METHODS:
            raise PaymentDeclined("the card was declined (sandbox test payment method)")
        ref = f"sbx_pi_{reference}"

        def hold() -> str:
            self.session.add(SandboxCharge(ref=ref, amount_minor=amount_minor, currency=currency,
                                           status="requires_capture"))
            return ref

        return self._once(idempotency_key, ["authorize", amount_minor, currency, payment_method, reference], hold)

    def capture(self, *, provider_ref: str, amount_minor: int, idempotency_key: str) -> None:
        # like Stripe, a payment is captured once: a second capture is refused, never charged again
        def take() -> str:
            if not self._change(provider_ref, SandboxCharge.status == "requires_capture",
                                SandboxCharge.amount_minor >= amount_minor, status="succeeded",
                                captured_minor=amount_minor, captures=SandboxCharge.captures + 1):
                raise Upstream(f"sandbox: payment {provider_ref} cannot be captured (not authorized, or captured "
                               "already)")
            return provider_ref

        self._once(idempotency_key, ["capture", provider_ref, amount_minor], take)

    def refund(self, *, provider_ref: str, amount_minor: int, idempotency_key: str, reference: str) -> ProviderRefund:
        def give_back() -> str:
            if not self._change(provider_ref, SandboxCharge.status == "succeeded",
                                SandboxCharge.refunded_minor + amount_minor <= SandboxCharge.captured_minor,
                                refunded_minor=SandboxCharge.refunded_minor + amount_minor,
                                refunds=SandboxCharge.refunds + 1):
                raise Upstream(f"sandbox: payment {provider_ref} cannot be refunded by {amount_minor}")
            return f"sbx_re_{hashlib.sha256(idempotency_key.encode()).hexdigest()[:24]}"

        ref = self._once(idempotency_key, ["refund", provider_ref, amount_minor, reference], give_back)
        return ProviderRefund(ref, RefundStatus.succeeded)

    def _once(self, key: str, params: list, act: Callable[[], str]) -> str:
        """`act` (no commit) and remember its answer under `key`; a repeated key gets the first answer."""
        fingerprint = hashlib.sha256(json.dumps(params).encode()).hexdigest()
        try:
            if (replayed := self._replay(key, fingerprint)) is not None:
                return replayed
            answer = act()
            self.session.add(SandboxRequest(idempotency_key=key, request_hash=fingerprint, answer=answer))
            self.session.commit()
            return answer
        except (Upstream, IntegrityError):
            self.session.rollback()  # a concurrent request with the key may have answered meanwhile
            if (replayed := self._replay(key, fingerprint)) is not None:
                return replayed
            raise

    def _replay(self, key: str, fingerprint: str) -> str | None:
        row = self.session.execute(select(SandboxRequest.request_hash, SandboxRequest.answer)
                                   .where(SandboxRequest.idempotency_key == key)).first()
        if row is not None and row.request_hash != fingerprint:
            raise Upstream("sandbox: this idempotency key was sent before with other parameters")
        return None if row is None else row.answer

    def _change(self, ref: str, *conditions, **values) -> bool:
        return self.session.execute(update(SandboxCharge).where(SandboxCharge.ref == ref, *conditions)
                                    .values(**values), execution_options=NO_SYNC).rowcount == 1


class StripeProvider:
    """Stripe PaymentIntents with manual capture. Thin on purpose: Stripe's SDK does the work, this maps its
    answers and errors onto ours. Needs network access to api.stripe.com."""

    name = "stripe"
    TRIES = 3

    def __init__(self, api_key: str, http_client=None, within_s: float = 60.0) -> None:
        import stripe

        self.stripe = stripe
        # every try of a call must end inside the payment lease, or a retry could take over a live request
        http_client = http_client or stripe.new_default_http_client(timeout=within_s / (self.TRIES + 1))
        self.client = stripe.StripeClient(api_key, http_client=http_client, max_network_retries=self.TRIES - 1)

    def authorize(self, *, amount_minor: int, currency: str, payment_method: str, reference: str,
                  idempotency_key: str) -> str:
        params = {"amount": amount_minor, "currency": currency.lower(), "payment_method": payment_method,
                  "confirm": True, "capture_method": "manual", "metadata": {"coherency_intent": reference},
                  "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"}}
        intent = self._call(self.client.v1.payment_intents.create, params=params,
                            options={"idempotency_key": idempotency_key})
        if intent.status != "requires_capture":
            raise PaymentDeclined(f"the payment needs more than a card authorization (Stripe status {intent.status})")
        return intent.id

    def capture(self, *, provider_ref: str, amount_minor: int, idempotency_key: str) -> None:
        self._call(self.client.v1.payment_intents.capture, provider_ref, params={"amount_to_capture": amount_minor},
                   options={"idempotency_key": idempotency_key})

    def refund(self, *, provider_ref: str, amount_minor: int, idempotency_key: str, reference: str) -> ProviderRefund:
        params = {"payment_intent": provider_ref, "amount": amount_minor, "metadata": {"coherency_refund": reference}}
        refund = self._call(self.client.v1.refunds.create, params=params, options={"idempotency_key": idempotency_key})
        status = STRIPE_REFUND_STATUS.get(refund.status, RefundStatus.pending)
        if status == RefundStatus.failed:
            raise Upstream(f"Stripe refused the refund (status {refund.status})")
        return ProviderRefund(refund.id, status)

    def _call(self, method, *args, **kwargs):
        try:
            return method(*args, **kwargs)
        except self.stripe.CardError as e:
            raise PaymentDeclined(e.user_message or "the card was declined") from e
        except self.stripe.StripeError as e:
            raise Upstream(f"Stripe refused or failed: {type(e).__name__}") from e


def get_provider(settings: SettingsDep, session: SessionDep) -> Provider:
    """The provider the settings name (the sandbox keeps its book in this request's database)."""
    if settings.payment_provider == "stripe":
        return StripeProvider(settings.stripe_api_key, within_s=settings.payment_lease_s)
    return SandboxProvider(session)


ProviderDep = Annotated[Provider, Depends(get_provider)]


def stamp(intent_id: str, step: str) -> str:
    """The key under which we ask the provider for one step of one intent, so our retries never repeat it."""
    return f"coherency-{intent_id}-{step}"

