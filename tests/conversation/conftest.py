"""Conversation fixtures: the store on SQLite and on a real PostgreSQL, and a real OpenAI-style server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conversation.settings import ConversationSettings
from tests.postgres import Postgres, postgres_server


def conversation_settings(database_url: str, **overrides: Any) -> ConversationSettings:
    """Settings for tests: no .env, the given database."""
    return ConversationSettings(_env_file=None, database_url=database_url, **overrides)  # type: ignore[call-arg]


@pytest.fixture(scope="package")
def postgres() -> Iterator[Postgres]:
    """One real PostgreSQL server for the package's tests."""
    with postgres_server() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a SQLite file, or a fresh database on the package's PostgreSQL."""
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
