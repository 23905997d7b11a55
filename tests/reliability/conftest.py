"""The real services for the reliability suite (the gateway's fixtures serve the real brokers)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.gateway.conftest import gateway_settings, gateway_url, stt_url, tts_url
from tests.servers import serve

__all__ = ["fuzz_gateway_url", "gateway_url", "stt_url", "tts_url"]


@pytest.fixture(scope="session")
def fuzz_gateway_url(stt_url: str, tts_url: str) -> Iterator[str]:
    """A gateway over the real brokers, with timeouts a shared CI machine cannot trip (a 504 here would
    measure the machine, not the gateway)."""
    from gateway.app import create_app

    settings = gateway_settings(stt_urls=stt_url, tts_urls=tts_url, stt_timeout=300, tts_timeout=300)
    with serve(create_app(settings)) as url:
        yield url
