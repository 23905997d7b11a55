"""The real services for the reliability suite (the gateway's fixtures serve the real brokers)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devkit.servers import serve
from tests.gateway.conftest import gateway_settings, gateway_url, stt_url, tts_url
from tests.mqtt_bridge.conftest import mosquitto, prefix

__all__ = ["conversation_url", "fuzz_gateway_url", "gateway_url", "mosquitto", "prefix", "stt_url", "tts_url"]


@pytest.fixture(scope="package")
def conversation_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The conversation service on SQLite with the offline ``echo`` responder."""
    from conversation.app import create_app as create_conversation
    from conversation.settings import ConversationSettings

    database = Path(tmp_path_factory.mktemp("fuzz-conversations")) / "conversations.sqlite3"
    settings = ConversationSettings(_env_file=None, database_url=f"sqlite+aiosqlite:///{database}")  # type: ignore[call-arg]
    with serve(create_conversation(settings)) as url:
        yield url


@pytest.fixture(scope="package")
def fuzz_gateway_url(stt_url: str, tts_url: str, conversation_url: str) -> Iterator[str]:
    """A gateway over the real brokers and conversation service, with timeouts a shared CI machine cannot
    trip (a 504 here would measure the machine, not the gateway)."""
    from gateway.app import create_app

    settings = gateway_settings(
        stt_urls=stt_url,
        tts_urls=tts_url,
        conversation_urls=conversation_url,
        stt_timeout=300,
        tts_timeout=300,
    )
    with serve(create_app(settings)) as url:
        yield url
