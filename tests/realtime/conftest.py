"""Realtime fixtures: the gateway in front of the real STT and TTS brokers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway.app import create_app
from tests.gateway.conftest import gateway_settings, stt_url, tts_url  # noqa: F401  (shared session fixtures)
from tests.servers import serve

API_KEY = "realtime-test-key"


@pytest.fixture(scope="session")
def realtime_url(stt_url: str, tts_url: str) -> Iterator[str]:  # noqa: F811
    """The gateway with an API key on, so every test also proves the SDK's ``Authorization: Bearer``."""
    settings = gateway_settings(
        stt_urls=stt_url,
        tts_urls=tts_url,
        api_keys=API_KEY,
        realtime_max_sessions=2,
    )
    with serve(create_app(settings)) as url:
        yield url
