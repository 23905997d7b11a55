"""Home Assistant discovery: payloads Home Assistant accepts, re-sent when it comes online."""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from devkit.mqtt_kit import Mosquitto, subscriber
from devkit.servers import serve
from mqtt_bridge import __version__
from mqtt_bridge.app import create_app
from mqtt_bridge.discovery import device_config, device_id
from mqtt_bridge.settings import BridgeSettings
from mqtt_bridge.topics import Topics
from tests.mqtt_bridge.ha_discovery import validate_device_discovery

SERVICES = {
    "gateway": ["http://127.0.0.1:8000"],
    "stt_broker": ["http://127.0.0.1:9082"],
    "tts_broker": ["http://127.0.0.1:8080", "http://127.0.0.1:8081"],
}


def settings(**overrides: Any) -> BridgeSettings:
    """Settings with the default services, nothing from the environment."""
    return BridgeSettings(_env_file=None, services=SERVICES, **overrides)  # type: ignore[call-arg]


def test_the_device_config_is_what_home_assistant_requires() -> None:
    config = settings()
    topics = Topics(config.topic_prefix, config.ha_discovery_prefix)
    payload = device_config(config, topics, __version__)
    topic = topics.ha_device_config(device_id(config))
    assert topic == "homeassistant/device/voicestack/config"
    assert validate_device_discovery(topic, payload) == []
    assert payload["dev"]["ids"] == ["voicestack"]
    assert payload["o"]["name"] == "voicestack-mqtt-bridge"
    assert payload["avty"] == [{"t": "voicestack/status", "pl_avail": "online", "pl_not_avail": "offline"}]
    components = payload["cmps"]
    assert set(components) == {
        "voicestack_gateway_health",
        "voicestack_stt_broker_health",
        "voicestack_tts_broker_health",
        "voicestack_last_transcript",
    }
    gateway = components["voicestack_gateway_health"]
    assert (gateway["p"], gateway["device_class"]) == ("binary_sensor", "connectivity")
    assert gateway["state_topic"] == "voicestack/health/gateway"
    assert gateway["value_template"] == "{{ 'ON' if value_json.up else 'OFF' }}"
    transcript = components["voicestack_last_transcript"]
    assert (transcript["p"], transcript["state_topic"]) == ("sensor", "voicestack/transcripts")
    assert all(component["unique_id"] == key for key, component in components.items())


def test_unique_ids_are_stable_and_follow_the_prefix_or_device_id() -> None:
    first = device_config(settings(), Topics("voicestack"), "1")
    assert device_config(settings(), Topics("voicestack"), "2")["cmps"].keys() == first["cmps"].keys()
    kitchen = settings(topic_prefix="home/kitchen voice")
    assert device_id(kitchen) == "home_kitchen_voice"
    named = settings(ha_device_id="den")
    assert set(device_config(named, Topics("x"), "1")["cmps"]) >= {"den_gateway_health", "den_last_transcript"}


@pytest.mark.parametrize(
    ("breakage", "complaint"),
    [
        (lambda p: p.pop("o"), "origin needs a name"),
        (lambda p: p["dev"].pop("ids"), "device needs at least one identifier"),
        (lambda p: p["cmps"]["voicestack_last_transcript"].pop("p"), "platform None is not supported"),
        (lambda p: p["cmps"]["voicestack_last_transcript"].pop("unique_id"), "need a unique_id"),
        (lambda p: p.update(name="x"), "not allowed at the top level"),
        (lambda p: p["avty"][0].update(t="a/#/b"), "availability topic"),
    ],
)
def test_the_validator_catches_what_home_assistant_rejects(
    breakage: Callable[[dict[str, object]], object], complaint: str
) -> None:
    payload = copy.deepcopy(device_config(settings(), Topics("voicestack"), "1"))
    breakage(payload)
    problems = validate_device_discovery("homeassistant/device/voicestack/config", payload)
    assert any(complaint in problem for problem in problems), problems


def test_discovery_is_retained_and_resent_when_home_assistant_comes_online(
    mosquitto: Mosquitto, prefix: str, settings_for: Callable[..., BridgeSettings]
) -> None:
    ha_prefix = f"ha-{uuid.uuid4().hex[:8]}"
    config = settings_for(
        ha_discovery=True,
        ha_discovery_prefix=ha_prefix,
        services=SERVICES,
        health_interval=3600,
        ha_rediscovery_max_delay=0.3,
    )
    topic = f"{ha_prefix}/device/{device_id(config)}/config"
    with subscriber(mosquitto.port, [f"{ha_prefix}/device/#"]) as sub, serve(create_app(config)):
        first = sub.wait_for(topic)
        assert validate_device_discovery(topic, first.json()) == []
        assert first.json()["avty"][0]["t"] == f"{prefix}/status"
        with subscriber(mosquitto.port, [f"{ha_prefix}/device/#"]) as late:
            assert late.wait_for(topic).retain
        sub.publish(f"{ha_prefix}/status", b"offline")
        time.sleep(0.6)  # twice the longest re-send delay: nothing may come
        assert len(sub.on(topic)) == 1
        sub.publish(f"{ha_prefix}/status", b"online")
        sub.wait_for(topic, lambda _m: len(sub.on(topic)) >= 2, timeout=5)
        resent = sub.on(topic)[-1]
        assert resent.payload == first.payload
        assert not resent.retain
