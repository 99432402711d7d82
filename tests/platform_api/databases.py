"""Throwaway databases for the API tests: a SQLite file, or a fresh PostgreSQL database on the local server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import make_url

from platform_api.db import engine_for, upgrade

POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"  # trust auth on the development and CI machines


@contextmanager
def postgres_database() -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped afterwards."""
    import psycopg

    name = f"coherency_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = str(make_url(POSTGRES_ADMIN_URL).set(database=name))
    try:
        yield url
    finally:
        engine_for.cache_clear()  # close pooled connections before the drop
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sqlite_url(folder: Path) -> str:
    return f"sqlite:///{folder / 'platform.db'}"


def migrate(url: str) -> None:
    """The schema as the migrations make it (test_migrations checks that it is the models' schema)."""
    upgrade(url)
