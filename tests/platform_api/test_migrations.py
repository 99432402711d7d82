"""The Alembic migrations make exactly the schema the models describe, on SQLite and on PostgreSQL, and can be
taken down again."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

import platform_api.tables  # noqa: F401 - the whole schema
from platform_api.db import Base, alembic_config, engine_for, upgrade
from tests.platform_api.databases import postgres_database, sqlite_url


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
