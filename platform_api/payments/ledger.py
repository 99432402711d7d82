"""The double-entry ledger: every capture and refund posts one debit and one equal credit, in the same
transaction as the status change it accounts for.

Accounts: provider_clearing (money the payment provider holds for us), sales (what patients paid for dressings),
refunds (a contra-revenue account: what went back to them). A refund that fails after it succeeded is reversed
by a refund_reversal posting (the refund's posting, mirrored), never by deleting rows.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from platform_api.db import new_id
from platform_api.payments.models import LedgerEntry, PaymentIntent, Side

CLEARING, SALES, REFUNDS = "provider_clearing", "sales", "refunds"
# kind -> (debited, credited)
POSTINGS = {"capture": (CLEARING, SALES), "refund": (REFUNDS, CLEARING), "refund_reversal": (CLEARING, REFUNDS)}


def post(session: Session, *, intent: PaymentIntent, kind: str, amount_minor: int, provider_ref: str | None) -> str:
    """Add the two rows of one posting (no commit: it joins the caller's transaction); its id."""
    debited, credited = POSTINGS[kind]
    posting_id = new_id()
    for account, side in ((debited, Side.debit), (credited, Side.credit)):
        session.add(LedgerEntry(posting_id=posting_id, intent_id=intent.id, kind=kind, account=account, side=side,
                                amount_minor=amount_minor, currency=intent.currency, provider_ref=provider_ref))
    return posting_id


def entries(session: Session, *, intent_id: str | None, limit: int, offset: int) -> list[LedgerEntry]:
    """Ledger rows, oldest first, optionally of one intent."""
    query = select(LedgerEntry).order_by(LedgerEntry.created_at, LedgerEntry.posting_id, LedgerEntry.side)
    if intent_id is not None:
        query = query.where(LedgerEntry.intent_id == intent_id)
    return list(session.scalars(query.limit(limit).offset(offset)))
