"""The embedded broker (``mqtt-bridge broker``, amqtt) carries messages, and the bridge works through it."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import paho.mqtt.client as paho

from devkit.mqtt_kit import event_json, fast_settings, make_event, subscriber, wait_until
from devkit.servers import free_port, serve
from mqtt_bridge.app import create_app
from mqtt_bridge.settings import BridgeSettings
from voicestack_common.events import EVENTS_PATH


def listening(port: int) -> Callable[[], bool]:
    """True once something accepts TCP connections on the loopback port."""

    def check() -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
        return False

    return check


def test_the_embedded_broker_serves_clients_and_the_bridge(tmp_path: Path, prefix: str) -> None:
    port = free_port()
    with (tmp_path / "broker.log").open("wb") as log:
        broker = subprocess.Popen(
            [sys.executable, "-m", "mqtt_bridge.cli", "broker", "--port", str(port)],
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(listening(port), 30, "the embedded broker")
        with subscriber(port, ["room/#"], protocol=paho.MQTTv311) as client:
            client.publish("room/light", b"on", retain=True)
            assert client.wait_for("room/light").payload == b"on"
        with subscriber(port, ["room/#"], protocol=paho.MQTTv311) as late:
            assert late.wait_for("room/light").retain

        settings: BridgeSettings = fast_settings(f"mqtt://127.0.0.1:{port}", prefix, tmp_path / "outbox.sqlite3")
        event = make_event("through the embedded broker")
        with (
            subscriber(port, [f"{prefix}/transcripts"], protocol=paho.MQTTv311) as sub,
            serve(create_app(settings)) as url,
        ):
            # amqtt speaks MQTT 3.1.1 only: "auto" must have fallen back.
            assert httpx.get(url + "/readyz", timeout=5).json()["checks"]["protocol"] == "3.1.1"
            assert httpx.post(url + EVENTS_PATH, json=event_json(event), timeout=10).status_code == 202
            assert sub.wait_for(f"{prefix}/transcripts").json() == event_json(event)
    finally:
        broker.send_signal(signal.SIGTERM)
        status = broker.wait(timeout=15)
    assert status == 0, (tmp_path / "broker.log").read_text()


@contextlib.contextmanager
def embedded(tmp_path: Path) -> Iterator[int]:
    """The embedded broker as its own process on a free loopback port."""
    port = free_port()
    with (tmp_path / "broker.log").open("wb") as log:
        broker = subprocess.Popen(
            [sys.executable, "-m", "mqtt_bridge.cli", "broker", "--port", str(port)],
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(listening(port), 30, "the embedded broker")
        yield port
    finally:
        broker.send_signal(signal.SIGTERM)
        broker.wait(timeout=15)


def test_retained_messages_reach_matching_subscriptions_only(tmp_path: Path, prefix: str) -> None:
    retained = {
        f"{prefix}/status": b"online",
        f"{prefix}/health": b"{}",
        f"{prefix}/health/stt_broker": b"{}",
        f"{prefix}/barrier": b"b",
    }
    # A broad subscriber that stays: amqtt used to replay its filter to every client that connected.
    with embedded(tmp_path) as port, subscriber(port, [f"{prefix}/#"], protocol=paho.MQTTv311) as broad:
        for topic, payload in retained.items():
            broad.publish(topic, payload, retain=True)
        wait_until(lambda: all(broad.on(topic) for topic in retained), 10, "the retained messages")
        cases = {
            "zz/none": set(),
            f"{prefix}/status": {f"{prefix}/status"},
            f"{prefix}/health/+": {f"{prefix}/health/stt_broker"},
            f"{prefix}/health": {f"{prefix}/health"},
            f"{prefix}/+/stt_broker": {f"{prefix}/health/stt_broker"},
            f"{prefix}/health/#": {f"{prefix}/health", f"{prefix}/health/stt_broker"},
        }
        for topic_filter, expected in cases.items():
            # The barrier's retained message comes after anything replayed at connection.
            with subscriber(port, [topic_filter, f"{prefix}/barrier"], protocol=paho.MQTTv311) as late:
                late.wait_for(f"{prefix}/barrier")
                got = {m.topic for m in late.messages} - {f"{prefix}/barrier"}
                assert got == expected, topic_filter


def test_the_embedded_broker_accepts_loopback_clients_only() -> None:
    from mqtt_bridge.broker import is_loopback

    assert all(is_loopback(a) for a in ("127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1", "localhost"))
    assert not any(is_loopback(a) for a in ("10.0.0.5", "192.168.1.2", "::ffff:10.0.0.5", "fe80::1", "", None))


def test_a_non_loopback_client_is_refused() -> None:
    import asyncio
    from types import SimpleNamespace

    from mqtt_bridge.broker import LoopbackOnlyAuthPlugin

    plugin = LoopbackOnlyAuthPlugin.__new__(LoopbackOnlyAuthPlugin)
    remote = SimpleNamespace(remote_address="192.168.1.20", is_anonymous=False)
    local = SimpleNamespace(remote_address="127.0.0.1", is_anonymous=False)
    assert asyncio.run(plugin.authenticate(session=remote)) is False  # type: ignore[arg-type]
    assert asyncio.run(plugin.authenticate(session=local)) is True  # type: ignore[arg-type]
