"""The API as it runs in production: `coherency api` in its own process on a fresh PostgreSQL database.

Concurrency tests send simultaneous requests to it, so every request really commits through its own pooled
connection; the crash test kills it mid-write. `live_api` is a module-scoped fixture (import it in a test module).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy.orm import Session

from platform_api.auth.models import User
from platform_api.auth.security import encode_token
from platform_api.db import session_factory
from platform_api.settings import Settings
from tests.platform_api.databases import migrate, postgres_database

COHERENCY = Path(sys.executable).with_name("coherency")


@dataclass
class LiveAPI:
    url: str
    settings: Settings
    process: subprocess.Popen
    log: Path

    def session(self) -> Session:
        """A session on the server's database, for arranging data and checking what was committed."""
        return session_factory(self.settings.database_url)()

    def headers(self, user: User) -> dict[str, str]:
        token, _ = encode_token(self.settings.secret_key, user.id, "access", timedelta(minutes=30),
                                role=user.role.value)
        return {"Authorization": f"Bearer {token}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_api(settings: Settings, port: int, log: Path) -> subprocess.Popen:
    """`coherency api` on this port with these settings; returns once /health answers."""
    env = {**os.environ, "DATABASE_URL": settings.database_url, "COHERENCY_API_STORAGE_URL": settings.storage_url,
           "COHERENCY_API_TOKEN_RATE_LIMIT": str(settings.token_rate_limit),
           "COHERENCY_API_SERVING_URL": settings.serving_url}
    with log.open("ab") as out:
        process = subprocess.Popen([str(COHERENCY), "api", "--port", str(port)], env=env, stdout=out,
                                   stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"coherency api exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"coherency api did not answer within 60 s: {log.read_text()[-2000:]}")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def live_api(tmp_path_factory) -> Iterator[LiveAPI]:
    folder = tmp_path_factory.mktemp("live-api")
    with postgres_database() as url:
        migrate(url)
        settings = Settings(database_url=url, storage_url=str(folder / "objects"), token_rate_limit=10_000)
        port = free_port()
        process = start_api(settings, port, folder / "api.log")
        try:
            yield LiveAPI(f"http://127.0.0.1:{port}", settings, process, folder / "api.log")
        finally:
            stop(process)
