"""The database: one engine per URL, the declarative base every domain's models.py uses, sessions, migrations.

SQLite (a file, the default) and PostgreSQL (DATABASE_URL) run the same code; the only dialect-specific lines
are here. Writes that must not race (a slot, stock, an idempotency key) are single conditional UPDATEs or
unique constraints, which both databases serialise without explicit locks.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import ClassVar

from sqlalchemy import DateTime, Engine, MetaData, String, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

MIGRATIONS = Path(__file__).parent / "migrations"

# constraint names that Alembic can find again on both databases
NAMING = {"ix": "ix_%(column_0_label)s", "uq": "uq_%(table_name)s_%(column_0_name)s",
          "ck": "ck_%(table_name)s_%(constraint_name)s", "fk": "fk_%(table_name)s_%(column_0_name)s",
          "pk": "pk_%(table_name)s"}


class UTCDateTime(TypeDecorator):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must carry a time zone")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict] = {datetime: UTCDateTime}


class IdMixin:
    """A random string id (ids in URLs reveal nothing about how many records exist) and a creation time."""

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


def normalise_url(url: str) -> str:
    """postgresql:// and postgres:// mean the psycopg 3 driver; a relative SQLite path gets its folder made."""
    if url.startswith(("postgres://", "postgresql://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    return url


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    """The process's engine for this database URL."""
    url = normalise_url(url)
    if make_url(url).get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, hide_parameters=True)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    # hide_parameters: database errors that reach a log never carry the values (patient data) of a statement
    return create_engine(url, pool_size=20, max_overflow=60, pool_pre_ping=True, hide_parameters=True)


def _sqlite_pragmas(connection, _record) -> None:
    # the driver's own implicit transactions break SAVEPOINT; SQLAlchemy emits BEGIN itself (_sqlite_begin)
    connection.isolation_level = None
    # WAL lets readers run beside the writer; foreign keys are off in SQLite unless asked for
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(connection) -> None:
    # IMMEDIATE takes the write lock at the start: a deferred transaction that read first and writes later fails
    # at once with "database is locked" when another writer holds it, where this one waits (busy_timeout).
    # SQLite is the one-machine default; PostgreSQL is what serves concurrent writers.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


@lru_cache(maxsize=8)
def session_factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(engine_for(url), expire_on_commit=False)


def alembic_config(url: str):
    """Alembic's configuration for the migrations in platform_api/migrations against `url`."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["url"] = normalise_url(url)
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at `url` to `revision`."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def new_revision(url: str, message: str) -> None:
    """Write a migration with what the models have and the database at `url` (at head) lacks."""
    from alembic import command

    command.revision(alembic_config(url), message=message, autogenerate=True)
