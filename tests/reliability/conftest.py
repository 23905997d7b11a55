"""The real services for the reliability suite (the gateway's fixtures serve the real brokers)."""

from __future__ import annotations

from tests.gateway.conftest import gateway_url, stt_url, tts_url

__all__ = ["gateway_url", "stt_url", "tts_url"]
