"""The Alembic migrations make exactly the schema the models describe, on SQLite and on PostgreSQL, and can be
taken down again; data written before a migration comes through it."""

from __future__ import annotations

from datetime import date

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.orm import Session

import platform_api.tables  # noqa: F401 - the whole schema
from platform_api.auth.models import User
from platform_api.commerce.models import Order
from platform_api.db import Base, alembic_config, engine_for, upgrade
from platform_api.patients.models import Patient
from platform_api.payments.models import LedgerEntry, PaymentIntent
from tests.platform_api.databases import postgres_database, sqlite_url

INITIAL = "b1cfd38570e1"


def _check(url: str) -> None:
    upgrade(url)
    with engine_for(url).connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True, "render_as_batch": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == [], f"the models differ from the migrations: {differences}"
    command.downgrade(alembic_config(url), "base")
    assert set(inspect(engine_for(url)).get_table_names()) <= {"alembic_version"}


def test_migrations_match_the_models_on_sqlite(tmp_path):
    _check(sqlite_url(tmp_path))


@pytest.mark.postgres
def test_migrations_match_the_models_on_postgres():
    with postgres_database() as url:
        _check(url)


def _refunds_come_through(url: str) -> None:
    """Refunds posted before the refunds table existed become succeeded refunds under their provider ids."""
    upgrade(url, INITIAL)
    with Session(engine_for(url)) as session:  # tables the later migrations leave as they were
        patient = Patient(given_name="Ada", family_name="Example", birth_date=date(1950, 5, 17), sex="female")
        user = User(email="admin@example.org", password_hash="x", role="admin")
        session.add_all([patient, user])
        session.flush()
        order = Order(patient_id=patient.id, placed_by=user.id, total_minor=2900, currency="EUR")
        session.add(order)
        session.flush()
        intent = PaymentIntent(order_id=order.id, patient_id=patient.id, created_by=user.id, provider="sandbox",
                               provider_ref="sbx_pi_old", status="succeeded", amount_minor=2900, captured_minor=2900,
                               refunded_minor=900, currency="EUR")
        session.add(intent)
        session.flush()
        for kind, account, side, ref in (("capture", "provider_clearing", "debit", "sbx_pi_old"),
                                         ("capture", "sales", "credit", "sbx_pi_old"),
                                         ("refund", "refunds", "debit", "sbx_re_old"),
                                         ("refund", "provider_clearing", "credit", "sbx_re_old")):
            session.add(LedgerEntry(posting_id=f"posting-{kind}", intent_id=intent.id, kind=kind, account=account,
                                    side=side, amount_minor=2900 if kind == "capture" else 900, currency="EUR",
                                    provider_ref=ref))
        intent_id = intent.id
        session.commit()
    upgrade(url)
    with engine_for(url).connect() as connection:
        refunds = connection.execute(text("SELECT id, intent_id, amount_minor, status, provider_ref, request_key "
                                          "FROM refunds")).all()
    assert [tuple(r) for r in refunds] == [("posting-refund", intent_id, 900, "succeeded", "sbx_re_old", None)]


def test_refunds_posted_before_the_refunds_table_come_through_on_sqlite(tmp_path):
    _refunds_come_through(sqlite_url(tmp_path))


@pytest.mark.postgres
def test_refunds_posted_before_the_refunds_table_come_through_on_postgres():
    with postgres_database() as url:
        _refunds_come_through(url)
