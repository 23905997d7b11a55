"""No event is lost: broker outages and SIGKILLed bridges, with the bridge as a real process."""

from __future__ import annotations

from pathlib import Path

import httpx
import paho.mqtt.client as paho
import pytest

from devkit.mqtt_kit import BridgeProcess, Mosquitto, event_json, make_event, subscriber, wait_until
from voicestack_common.events import EVENTS_PATH, SpeechEvent

pytestmark = pytest.mark.slow


def post_all(url: str, events: list[SpeechEvent]) -> None:
    """POST every event; each must be accepted (202)."""
    with httpx.Client(base_url=url, timeout=10) as client:
        for event in events:
            response = client.post(EVENTS_PATH, json=event_json(event))
            assert response.status_code == 202, response.text


def test_200_events_posted_while_the_broker_is_down_all_arrive(tmp_path: Path, prefix: str) -> None:
    # Persistence and a persistent session let the subscriber miss nothing across the restart.
    broker = Mosquitto(tmp_path, persistence=True)
    broker.start()
    events = [make_event(f"event number {i}") for i in range(200)]
    expected = {event.event_id: event_json(event) for event in events}
    bridge = BridgeProcess(tmp_path, broker.url, prefix)
    try:
        with subscriber(
            broker.port,
            [f"{prefix}/transcripts"],
            protocol=paho.MQTTv311,
            client_id=f"durable-{prefix}",
            clean_session=False,
        ) as sub:
            bridge.start()
            broker.stop()
            post_all(bridge.url, events)
            broker.start()

            def all_arrived() -> bool:
                return {m.json()["event_id"] for m in sub.on(f"{prefix}/transcripts")} == set(expected)

            wait_until(all_arrived, 60, "all 200 events")
            received = sub.on(f"{prefix}/transcripts")
            # Redeliveries are allowed, but only as exact copies with the same event_id.
            assert all(m.json() == expected[m.json()["event_id"]] for m in received)
            assert bridge.stop()
    finally:
        bridge.stop()
        broker.stop()


def test_a_killed_bridge_leaves_its_will_and_delivers_pending_events_after_restart(
    tmp_path: Path, prefix: str, mosquitto: Mosquitto
) -> None:
    with subscriber(mosquitto.port, [f"{prefix}/status"]) as status:
        first = BridgeProcess(tmp_path, mosquitto.url, prefix)
        first.start()
        status.wait_for(f"{prefix}/status", lambda m: m.payload == b"online")
        first.kill()
        status.wait_for(f"{prefix}/status", lambda m: m.payload == b"offline", timeout=10)

    second = BridgeProcess(tmp_path, mosquitto.url, prefix)
    second.start()
    mosquitto.stop()
    events = [make_event(f"pending {i}") for i in range(50)]
    post_all(second.url, events)
    second.kill()

    mosquitto.start()
    with subscriber(mosquitto.port, [f"{prefix}/transcripts"]) as sub:
        third = BridgeProcess(tmp_path, mosquitto.url, prefix)
        try:
            third.start()
            expected = {event.event_id for event in events}
            wait_until(
                lambda: {m.json()["event_id"] for m in sub.on(f"{prefix}/transcripts")} == expected,
                30,
                "the events pending at the kill",
            )
            assert third.stop()
        finally:
            third.stop()
