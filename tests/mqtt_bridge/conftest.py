"""MQTT bridge fixtures: a mosquitto per test, a unique topic prefix, settings, events."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devkit.mqtt_kit import Mosquitto, fast_settings
from mqtt_bridge.settings import BridgeSettings


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """Debian's mosquitto on a free loopback port, stopped after the test."""
    broker = Mosquitto(tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def prefix() -> str:
    """A topic prefix no other test uses."""
    return f"vs-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def settings_for(mosquitto: Mosquitto, prefix: str, tmp_path: Path) -> Callable[..., BridgeSettings]:
    """Build bridge settings against this test's broker and prefix."""

    def build(**overrides: Any) -> BridgeSettings:
        return fast_settings(mosquitto.url, prefix, tmp_path / "outbox.sqlite3", **overrides)

    return build
