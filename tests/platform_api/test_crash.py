"""Kill -9 the API in the middle of a stream of writes: every answered write is there afterwards, and no write is
there in part (a patient without the care-team row and audit record written in the same transaction)."""

from __future__ import annotations

import signal
import threading
import time

import httpx
import pytest
from sqlalchemy import func, select

from platform_api.audit.models import AuditRecord
from platform_api.auth import service as users
from platform_api.auth.models import Role
from platform_api.patients.models import CareAssignment, Patient
from platform_api.settings import Settings
from tests.platform_api.conftest import PASSWORD
from tests.platform_api.databases import migrate, postgres_database
from tests.platform_api.live import LiveAPI, free_port, start_api, stop

pytestmark = pytest.mark.postgres
WRITERS, WRITES_EACH = 8, 200


def test_killed_server_loses_nothing_committed_and_leaves_nothing_half_written(tmp_path):
    with postgres_database() as url:
        migrate(url)
        settings = Settings(database_url=url, storage_url=str(tmp_path / "objects"), token_rate_limit=10_000)
        port = free_port()
        api = LiveAPI(f"http://127.0.0.1:{port}", settings, start_api(settings, port, tmp_path / "api.log"),
                      tmp_path / "api.log")
        with api.session() as session:
            clinician = users.create(session, email="crash@example.org", password=PASSWORD, role=Role.clinician)
        answered = _write_until_killed(api, api.headers(clinician))
        restarted = start_api(settings, port, tmp_path / "api.log")
        try:
            with api.session() as session:
                _check_whole(session, answered, clinician.id)
        finally:
            stop(restarted)


def _write_until_killed(api: LiveAPI, headers: dict[str, str]) -> set[str]:
    """Patients created by concurrent writers until the server is killed; the ids of those answered 201."""
    answered: set[str] = set()
    lock = threading.Lock()

    def writer(n: int) -> None:
        with httpx.Client(base_url=api.url, headers=headers, timeout=10) as client:
            for i in range(WRITES_EACH):
                body = {"given_name": "Crash", "family_name": f"W{n}-{i}", "birth_date": "1970-01-01"}
                try:
                    response = client.post("/patients", json=body)
                except httpx.TransportError:
                    return  # the server is gone
                if response.status_code == 201:
                    with lock:
                        answered.add(response.json()["id"])

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while len(answered) < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    api.process.send_signal(signal.SIGKILL)  # no shutdown, no rollback by the server: the database must cope
    api.process.wait()
    for thread in threads:
        thread.join(timeout=30)
    assert len(answered) >= 20, "the server answered too few writes before it was killed"
    return answered


def _check_whole(session, answered: set[str], clinician_id: str) -> None:
    stored = set(session.scalars(select(Patient.id).where(Patient.given_name == "Crash")))
    assert answered <= stored, f"{len(answered - stored)} answered writes were lost"
    assert len(stored) < WRITERS * WRITES_EACH, "the kill came after every write: nothing was interrupted"
    team = set(session.scalars(select(CareAssignment.patient_id).where(CareAssignment.user_id == clinician_id)))
    audited = set(session.scalars(select(AuditRecord.patient_id).where(AuditRecord.action == "create")))
    assert stored == team, "patients without their care-team row (half-written)"
    assert stored == audited, "patients without their audit record (half-written)"
    orphans = select(func.count()).select_from(CareAssignment).where(CareAssignment.patient_id.not_in(stored))
    assert session.scalar(orphans) == 0
