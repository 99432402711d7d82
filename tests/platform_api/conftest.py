"""The API under test on SQLite and on PostgreSQL: each test runs in a transaction that is rolled back."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

import platform_api.tables  # noqa: F401 - the whole schema
from platform_api.auth.models import Role, User
from platform_api.auth.security import encode_token, hash_password
from platform_api.db import engine_for
from platform_api.deps import get_session, session_source
from platform_api.main import create_app
from platform_api.patients.models import CareAssignment, Patient, Wound
from platform_api.settings import Settings
from tests.platform_api.databases import migrate, postgres_database, sqlite_url

PASSWORD = "correct horse battery"


@pytest.fixture(scope="session", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path_factory) -> Iterator[str]:
    if request.param == "sqlite":
        url = sqlite_url(tmp_path_factory.mktemp("api-sqlite"))
        migrate(url)
        yield url
    else:
        with postgres_database() as url:
            migrate(url)
            yield url


@pytest.fixture
def settings(database_url, tmp_path) -> Settings:
    return Settings(database_url=database_url, storage_url=str(tmp_path / "objects"), token_rate_limit=1000)


@pytest.fixture
def session(database_url) -> Iterator[Session]:
    """A session inside an outer transaction: its commits are savepoints, all rolled back after the test."""
    connection = engine_for(database_url).connect()
    outer = connection.begin()
    session = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        yield session
    finally:
        session.close()
        outer.rollback()
        connection.close()


@pytest.fixture
def app(settings, session):
    app = create_app(settings)

    def test_session() -> Iterator[Session]:
        try:
            yield session
        finally:
            session.rollback()  # what a failed request left uncommitted (committed work is a released savepoint)

    app.dependency_overrides[get_session] = test_session
    app.dependency_overrides[session_source] = lambda: contextmanager(test_session)  # the routes on deps.Work
    return app


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


# ----------------------------------------------------------------------------------------------------- factories


@functools.cache
def _hash_of(password: str) -> str:
    # argon2 is slow by design (a quarter second here); tests hash each password once (auth tests cover create)
    return hash_password(password)


@pytest.fixture
def make_user(session) -> Callable[..., User]:
    counter = iter(range(10**6))

    def make(role: Role | str = Role.clinician, patient: Patient | None = None, password: str = PASSWORD) -> User:
        role = Role(role)
        user = User(email=f"{role.value}{next(counter)}@example.org", password_hash=_hash_of(password), role=role,
                    patient_id=patient.id if patient else None, display_name=f"Test {role.value}")
        session.add(user)
        session.commit()
        return user

    return make


@pytest.fixture
def make_patient(session) -> Callable[..., Patient]:
    def make(*, care_team: tuple[User, ...] = (), **fields) -> Patient:
        values = {"given_name": "Ada", "family_name": "Example", "birth_date": date(1950, 5, 17), "sex": "female"}
        patient = Patient(**{**values, **fields})
        session.add(patient)
        session.flush()
        session.add_all(CareAssignment(patient_id=patient.id, user_id=member.id) for member in care_team)
        session.commit()
        return patient

    return make


@pytest.fixture
def make_wound(session) -> Callable[..., Wound]:
    def make(patient: Patient, **fields) -> Wound:
        values = {"etiology": "diabetic_foot_ulcer", "body_site": "left plantar forefoot",
                  "onset_date": date(2026, 9, 1)}
        wound = Wound(patient_id=patient.id, **{**values, **fields})
        session.add(wound)
        session.commit()
        return wound

    return make


@pytest.fixture
def auth(settings) -> Callable[[User], dict[str, str]]:
    """Bearer headers for a user (tokens signed as /auth/token signs them)."""
    from datetime import timedelta

    def headers(user: User) -> dict[str, str]:
        token, _ = encode_token(settings.secret_key, user.id, "access", timedelta(minutes=5), role=user.role.value)
        return {"Authorization": f"Bearer {token}"}

    return headers


@pytest.fixture
def world(make_user, make_patient, make_wound):
    """Two patients, each with a wound, a clinician, a caregiver and a patient login; and an admin."""

    class World:
        admin = make_user(Role.admin)
        clinician, other_clinician = make_user(Role.clinician), make_user(Role.clinician)
        caregiver = make_user(Role.caregiver)
        patient = make_patient(care_team=(clinician, caregiver))
        other = make_patient(care_team=(other_clinician,), given_name="Bo")
        wound, other_wound = make_wound(patient), make_wound(other)
        patient_user, other_user = make_user(Role.patient, patient), make_user(Role.patient, other)

    return World
