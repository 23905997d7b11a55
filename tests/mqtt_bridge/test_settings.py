"""Bridge settings: defaults, environment variables, and what fails fast."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from mqtt_bridge.connection import broker_address, credentials, tls_context
from mqtt_bridge.settings import BridgeSettings


def load(**values: Any) -> BridgeSettings:
    """Settings from keyword values and the environment, never a .env file."""
    return BridgeSettings(_env_file=None, **values)  # type: ignore[call-arg]


def test_defaults() -> None:
    settings = load()
    assert (settings.port, settings.mqtt_url, settings.topic_prefix) == (9090, "mqtt://127.0.0.1:1883", "voicestack")
    assert settings.max_upload_bytes == 512 * 1024
    assert settings.services == {
        "gateway": ["http://127.0.0.1:8000"],
        "stt_broker": ["http://127.0.0.1:9082"],
        "tts_broker": ["http://127.0.0.1:8080"],
    }
    assert settings.gateway_url == "http://127.0.0.1:8000"
    assert settings.outbox_path.name == "outbox.sqlite3"
    assert broker_address(settings) == ("127.0.0.1", 1883)
    assert tls_context(settings) is None


def test_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MQTT_BRIDGE_MQTT_URL", "mqtts://user%40home:p%3Ass@broker.lan")
    monkeypatch.setenv("MQTT_BRIDGE_SERVICES__STT_BROKER", '["http://stt-1:9082/", "http://stt-2:9082"]')
    monkeypatch.setenv("MQTT_BRIDGE_MQTT_PASSWORD", "from-env")
    monkeypatch.setenv("MQTT_BRIDGE_HEALTH_INTERVAL", "2.5")
    settings = load()
    assert settings.services == {"stt_broker": ["http://stt-1:9082", "http://stt-2:9082"]}
    assert settings.health_interval == 2.5
    assert broker_address(settings) == ("broker.lan", 8883)
    assert credentials(settings) == ("user@home", "from-env")
    assert "from-env" not in repr(settings)
    assert tls_context(settings) is not None


def test_credentials_from_the_url() -> None:
    assert credentials(load(mqtt_url="mqtt://me:pw@h:1")) == ("me", "pw")
    assert credentials(load(mqtt_url="mqtt://me:pw@h:1", mqtt_username="other")) == ("other", "pw")


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"mqtt_url": "http://broker:1883"}, "mqtt://host:1883"),
        ({"mqtt_url": "mqtt://broker:notaport"}, "Port could not be cast"),
        ({"topic_prefix": "home/#"}, "without wildcards"),
        ({"topic_prefix": "/home"}, "leading/trailing"),
        ({"services": {"my service": ["http://x"]}}, "letters, digits"),
        ({"services": {"x": []}}, "has no URL"),
        ({"services": {"x": ["ftp://x"]}}, r"not an http\(s\) URL"),
        ({"gateway_url": "gateway:8000"}, r"not an http\(s\) URL"),
        ({"ha_device_id": "a b"}, "letters, digits"),
        ({"mqtt_tls_ca_file": "/nonexistent/ca.pem", "mqtt_url": "mqtts://h"}, "does not exist"),
        ({"reconnect_min_delay": 5, "reconnect_max_delay": 1}, "RECONNECT_MAX_DELAY"),
        ({"mqtt_protocol": "4"}, "'auto', '5' or '3.1.1'"),
    ],
)
def test_bad_settings_fail_fast(values: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        load(**values)


def test_tls_files_need_mqtts(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("")
    with pytest.raises(ValidationError, match="not mqtts://"):
        load(mqtt_tls_ca_file=ca)
    with pytest.raises(ValidationError, match="needs MQTT_BRIDGE_MQTT_TLS_CERT_FILE"):
        load(mqtt_url="mqtts://h", mqtt_tls_key_file=ca)
