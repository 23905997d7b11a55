"""Realtime fixtures: the gateway in front of the real STT and TTS brokers and the conversation service."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from devkit.servers import serve
from gateway.app import create_app
from tests.gateway.conftest import gateway_settings, stt_url, tts_url  # noqa: F401  (shared package fixtures)

API_KEY = "realtime-test-key"


@contextmanager
def _conversation_service(database: Path, **overrides: Any) -> Iterator[str]:
    from conversation.app import create_app as create_conversation
    from conversation.settings import ConversationSettings

    settings = ConversationSettings(_env_file=None, database_url=f"sqlite+aiosqlite:///{database}", **overrides)  # type: ignore[call-arg]
    with serve(create_conversation(settings)) as url:
        yield url


@contextmanager
def _gateway(stt: str, tts: str, conversations: str) -> Iterator[str]:
    """The gateway with an API key on, so every test also proves the SDK's ``Authorization: Bearer``."""
    settings = gateway_settings(
        stt_urls=stt, tts_urls=tts, conversation_urls=conversations, api_keys=API_KEY, realtime_max_sessions=2
    )
    with serve(create_app(settings)) as url:
        yield url


@pytest.fixture(scope="package")
def conversation_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The conversation service on SQLite, answering with the offline ``echo`` responder; an operator's
    policy that keeps the system prompt its own."""
    with _conversation_service(
        tmp_path_factory.mktemp("realtime") / "conversations.sqlite3", allowed_options=["temperature", "max_tokens"]
    ) as url:
        yield url


@pytest.fixture(scope="package")
def model_conversation_url(tmp_path_factory: pytest.TempPathFactory, openai_server: str) -> Iterator[str]:
    """The conversation service answering with the ``openai`` responder against the OpenAI-style test
    server (a process), every client option allowed."""
    with _conversation_service(
        tmp_path_factory.mktemp("realtime-model") / "conversations.sqlite3",
        responder="openai",
        openai_base_url=openai_server,
        allowed_options=["temperature", "max_tokens", "system_prompt"],
        reply_timeout=180,
        max_reply_chars=50_000,  # a trickling reply outlasts any test
    ) as url:
        yield url


@pytest.fixture(scope="package")
def realtime_url(stt_url: str, tts_url: str, conversation_url: str) -> Iterator[str]:  # noqa: F811
    """The gateway in front of the ``echo``-responder conversation service."""
    with _gateway(stt_url, tts_url, conversation_url) as url:
        yield url


@pytest.fixture(scope="package")
def model_realtime_url(stt_url: str, tts_url: str, model_conversation_url: str) -> Iterator[str]:  # noqa: F811
    """The gateway in front of the ``openai``-responder conversation service."""
    with _gateway(stt_url, tts_url, model_conversation_url) as url:
        yield url
