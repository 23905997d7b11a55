"""Conversation fixtures: the store on SQLite and on a real PostgreSQL, and a real OpenAI-style server."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conversation.settings import ConversationSettings
from tests.postgres import Postgres, postgres_server
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]


def conversation_settings(database_url: str, **overrides: Any) -> ConversationSettings:
    """Settings for tests: no .env, the given database."""
    return ConversationSettings(_env_file=None, database_url=database_url, **overrides)  # type: ignore[call-arg]


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """One real PostgreSQL server for the session."""
    with postgres_server() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a SQLite file, or a fresh database on the session's PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'conversations.sqlite3'}"
    server: Postgres = request.getfixturevalue("postgres")
    name = f"t_{uuid.uuid4().hex[:12]}"
    server.psql(f"CREATE DATABASE {name}")
    return server.url(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """An empty SQLite database."""
    return f"sqlite+aiosqlite:///{tmp_path / 'conversations.sqlite3'}"


@pytest.fixture(scope="session")
def openai_server() -> Iterator[str]:
    """tests/conversation/openai_server.py as its own process; yields its ``/v1`` base URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.conversation.openai_server", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/requests", timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the OpenAI-style test server did not start") from None
                time.sleep(0.05)
        yield f"{base}/v1"
    finally:
        process.terminate()
        process.wait(10)
        if process.stderr is not None:
            process.stderr.close()
