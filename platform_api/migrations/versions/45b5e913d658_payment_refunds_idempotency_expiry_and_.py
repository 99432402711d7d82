"""payment refunds, idempotency expiry and lease, sandbox idempotency keys

Refunds get their own table (webhooks move them); the refunds already posted to the ledger become succeeded
refunds under their provider reference, so a later event about one of them is recognised, not booked twice.

Revision ID: 45b5e913d658
Revises: b1cfd38570e1
Create Date: 2026-12-03 12:34:02.636141
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import platform_api.db


revision = '45b5e913d658'
down_revision = 'b1cfd38570e1'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('sandbox_requests',
    sa.Column('idempotency_key', sa.String(length=255), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('answer', sa.String(length=255), nullable=False),
    sa.Column('created_at', platform_api.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('idempotency_key', name=op.f('pk_sandbox_requests'))
    )
    op.create_table('refunds',
    sa.Column('intent_id', sa.String(length=36), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.Enum('requested', 'pending', 'succeeded', 'failed', name='refundstatus', native_enum=False, length=12), nullable=False),
    sa.Column('request_key', sa.String(length=255), nullable=True),
    sa.Column('provider_ref', sa.String(length=255), nullable=True),
    sa.Column('failure_message', sa.String(length=300), nullable=True),
    sa.Column('updated_at', platform_api.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('created_at', platform_api.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('amount_minor > 0', name=op.f('ck_refunds_amount_positive')),
    sa.ForeignKeyConstraint(['intent_id'], ['payment_intents.id'], name=op.f('fk_refunds_intent_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_refunds')),
    sa.UniqueConstraint('provider_ref', name=op.f('uq_refunds_provider_ref')),
    sa.UniqueConstraint('request_key', name=op.f('uq_refunds_request_key'))
    )
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_refunds_intent_id'), ['intent_id'], unique=False)

    with op.batch_alter_table('idempotency_records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('locked_at', platform_api.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_idempotency_records_created_at', ['created_at'], unique=False)

    # one row per refund posting (its debit side); the posting id, a UUID, serves as the refund's id
    op.execute("INSERT INTO refunds (id, intent_id, amount_minor, currency, status, provider_ref, created_at, "
               "updated_at) SELECT posting_id, intent_id, amount_minor, currency, 'succeeded', provider_ref, "
               "created_at, created_at FROM ledger_entries WHERE kind = 'refund' AND side = 'debit'")


def downgrade() -> None:
    with op.batch_alter_table('idempotency_records', schema=None) as batch_op:
        batch_op.drop_index('ix_idempotency_records_created_at')
        batch_op.drop_column('locked_at')

    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_refunds_intent_id'))

    op.drop_table('refunds')
    op.drop_table('sandbox_requests')
