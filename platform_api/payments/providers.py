"""Payment providers: the built-in sandbox (the default) and a thin Stripe adapter, chosen by
settings.payment_provider. Both authorize (hold) an amount, capture it later and refund parts of it.

Services call a provider only right after a commit, outside any open unit of work: the provider's side is
an outside system whose record does not roll back with ours (the sandbox keeps its book in its own table and
commits it at once, as a provider would).
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Protocol

from fastapi import Depends
from sqlalchemy import update
from sqlalchemy.orm import Session

from platform_api.deps import SessionDep, SettingsDep
from platform_api.errors import DomainError, Upstream
from platform_api.payments.models import SandboxCharge

# Stripe's own test payment methods, so the same names drive both providers in tests and demos
DECLINED_METHODS = frozenset({"pm_card_chargeDeclined", "pm_card_visa_chargeDeclined", "tok_chargeDeclined"})
NO_SYNC = {"synchronize_session": False}


class PaymentDeclined(DomainError):
    """The card or bank refused the payment; the client can try another payment method."""

    status, code = 402, "payment_declined"


class Provider(Protocol):
    name: str

    def authorize(self, *, amount_minor: int, currency: str, payment_method: str, reference: str,
                  idempotency_key: str) -> str:
        """Hold the amount; the provider's reference of the payment. PaymentDeclined or Upstream."""
        ...

    def capture(self, *, provider_ref: str, amount_minor: int, idempotency_key: str) -> None:
        """Take the held amount. Upstream when the provider refuses or fails."""
        ...

    def refund(self, *, provider_ref: str, amount_minor: int, idempotency_key: str) -> str:
        """Give back part or all of what was captured; the refund's reference."""
        ...


class SandboxProvider:
    """Deterministic, in-process and offline: every payment method authorizes except Stripe's declining test
    methods; references derive from our ids; its book is the sandbox_charges table."""

    name = "sandbox"

    def __init__(self, session: Session) -> None:
        self.session = session

    def authorize(self, *, amount_minor: int, currency: str, payment_method: str, reference: str,
                  idempotency_key: str) -> str:
        if payment_method in DECLINED_METHODS:
            raise PaymentDeclined("the card was declined (sandbox test payment method)")
        ref = f"sbx_pi_{reference}"
        self.session.add(SandboxCharge(ref=ref, amount_minor=amount_minor, currency=currency,
                                       status="requires_capture"))
        self.session.commit()
        return ref

    def capture(self, *, provider_ref: str, amount_minor: int, idempotency_key: str) -> None:
        # like Stripe, a payment is captured once: a second capture is refused, never charged again
        captured = self._change(provider_ref, SandboxCharge.status == "requires_capture",
                                SandboxCharge.amount_minor >= amount_minor, status="succeeded",
                                captured_minor=amount_minor, captures=SandboxCharge.captures + 1)
        if not captured:
            raise Upstream(f"sandbox: payment {provider_ref} cannot be captured (not authorized, or captured already)")

    def refund(self, *, provider_ref: str, amount_minor: int, idempotency_key: str) -> str:
        refunded = self._change(provider_ref, SandboxCharge.status == "succeeded",
                                SandboxCharge.refunded_minor + amount_minor <= SandboxCharge.captured_minor,
                                refunded_minor=SandboxCharge.refunded_minor + amount_minor,
                                refunds=SandboxCharge.refunds + 1)
        if not refunded:
            raise Upstream(f"sandbox: payment {provider_ref} cannot be refunded by {amount_minor}")
        return f"sbx_re_{hashlib.sha256(idempotency_key.encode()).hexdigest()[:24]}"

    def _change(self, ref: str, *conditions, **values) -> bool:
        changed = self.session.execute(update(SandboxCharge).where(SandboxCharge.ref == ref, *conditions)
                                       .values(**values), execution_options=NO_SYNC).rowcount == 1
        self.session.commit()
        return changed


class StripeProvider:
    """Stripe PaymentIntents with manual capture. Thin on purpose: Stripe's SDK does the work, this maps its
    answers and errors onto ours. Needs network access to api.stripe.com."""

    name = "stripe"

    def __init__(self, api_key: str, http_client=None) -> None:
        import stripe

        self.stripe = stripe
        self.client = stripe.StripeClient(api_key, http_client=http_client, max_network_retries=2)

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

    def refund(self, *, provider_ref: str, amount_minor: int, idempotency_key: str) -> str:
        refund = self._call(self.client.v1.refunds.create, params={"payment_intent": provider_ref,
                                                                   "amount": amount_minor},
                            options={"idempotency_key": idempotency_key})
        return refund.id

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
        return StripeProvider(settings.stripe_api_key)
    return SandboxProvider(session)


ProviderDep = Annotated[Provider, Depends(get_provider)]


def stamp(intent_id: str, step: str) -> str:
    """The key under which we ask the provider for one step of one intent, so our retries never repeat it."""
    return f"coherency-{intent_id}-{step}"

