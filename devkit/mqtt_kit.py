"""Real MQTT for tests: Debian's mosquitto on a free loopback port, and a subscriber that records."""

from __future__ import annotations

import contextlib
import getpass
import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from devkit.servers import ServiceProcess, free_port
from mqtt_bridge.settings import BridgeSettings
from voicestack_common.events import SpeechEvent, new_event_id

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.02) -> None:
    """Poll ``check`` until true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class Mosquitto:
    """A mosquitto process with its own config file; stop and start keep the port."""

    def __init__(self, workdir: Path, extra_config: str = "allow_anonymous true", *, persistence: bool = False) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.extra_config = extra_config
        self.persistence = persistence
        self.proc: subprocess.Popen[bytes] | None = None
        self.config = workdir / f"mosquitto-{self.port}.conf"
        self.log = workdir / f"mosquitto-{self.port}.log"

    @property
    def url(self) -> str:
        """The broker URL for MQTT_BRIDGE_MQTT_URL."""
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start, and return once it accepts TCP connections."""
        self.config.write_text(
            # Started as root, mosquitto would switch to its own user, unable to write here.
            f"user {getpass.getuser()}\nlistener {self.port} 127.0.0.1\n{self.extra_config}\n"
            f"persistence {'true' if self.persistence else 'false'}\npersistence_location {self.workdir}/\n"
            f"log_dest file {self.log}\nlog_type error\nlog_type warning\n"
        )
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

        def accepting() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"mosquitto exited: {self.log.read_text() if self.log.exists() else ''}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
            return False

        wait_until(accepting, 10, "mosquitto to listen")

    def stop(self) -> None:
        """Stop it (SIGTERM); retained messages go with it (persistence is off)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None


@dataclass(frozen=True)
class Received:
    """One message as a subscriber saw it."""

    topic: str
    payload: bytes
    retain: bool
    properties: Any = None

    def json(self) -> Any:
        """The payload as JSON."""
        return json.loads(self.payload)


class Subscriber:
    """A paho client on its own thread that records every message on its topics."""

    def __init__(
        self,
        port: int,
        topics: list[str],
        *,
        protocol: MQTTProtocolVersion = paho.MQTTv5,
        client_id: str = "",
        clean_session: bool | None = None,
    ) -> None:
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol, clean_session=clean_session
        )
        # Come back quickly when a test restarts the broker.
        self.client.reconnect_delay_set(0.1, 0.5)  # type: ignore[arg-type]  # paho sleeps fractions fine
        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_args: self._subscribed.set()
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        if topics:
            self.client.subscribe([(topic, 1) for topic in topics])
            assert self._subscribed.wait(10), "no SUBACK"

    def _on_message(self, _client: Any, _userdata: Any, message: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(
                Received(
                    message.topic, bytes(message.payload), bool(message.retain), getattr(message, "properties", None)
                )
            )

    def on(self, topic: str) -> list[Received]:
        """Messages received on ``topic`` so far."""
        with self._lock:
            return [m for m in self.messages if m.topic == topic]

    def wait_for(
        self, topic: str, predicate: Callable[[Received], bool] = lambda _m: True, timeout: float = 10.0
    ) -> Received:
        """The first message on ``topic`` that satisfies ``predicate``."""
        found: list[Received] = []

        def check() -> bool:
            found[:] = [m for m in self.on(topic) if predicate(m)]
            return bool(found)

        wait_until(check, timeout, f"a message on {topic}")
        return found[0]

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        response_topic: str | None = None,
        correlation: bytes | None = None,
        retain: bool = False,
    ) -> None:
        """Publish with QoS 1 (with MQTT 5 request/response properties when given) and wait for PUBACK."""
        properties = None
        if response_topic is not None:
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.ResponseTopic = response_topic
            if correlation is not None:
                properties.CorrelationData = correlation
        info = self.client.publish(topic, payload, qos=1, retain=retain, properties=properties)
        info.wait_for_publish(timeout=10)

    def close(self) -> None:
        """Disconnect and stop the thread."""
        self.client.disconnect()
        self.client.loop_stop()


@contextlib.contextmanager
def subscriber(port: int, topics: list[str], **options: Any) -> Iterator[Subscriber]:
    """A recording subscriber for the block."""
    sub = Subscriber(port, topics, **options)
    try:
        yield sub
    finally:
        sub.close()


def fast_settings(broker_url: str, prefix: str, outbox: Path, **overrides: Any) -> BridgeSettings:
    """Settings for tests: short timings, no services, nothing from a .env."""
    values: dict[str, Any] = {
        "mqtt_url": broker_url,
        "topic_prefix": prefix,
        "outbox_path": outbox,
        "services": {},
        "ha_discovery": False,
        "reconnect_min_delay": 0.1,
        "reconnect_max_delay": 0.5,
        "mqtt_timeout": 5.0,
        "mqtt_keepalive": 5,
        "health_interval": 0.5,
        "health_timeout": 0.5,
        "ha_rediscovery_max_delay": 0.2,
        "log_format": "text",
    }
    values.update(overrides)
    return BridgeSettings(_env_file=None, **values)  # type: ignore[call-arg]


def make_event(text: str = "turn on the kitchen lights", **overrides: Any) -> SpeechEvent:
    """A valid transcription event."""
    finished = datetime.now(UTC)
    values: dict[str, Any] = {
        "event_id": new_event_id(),
        "type": "transcription",
        "text": text,
        "language": "en",
        "duration_seconds": 1.5,
        "model": "tiny.en",
        "confidence": 0.9,
        "request_id": "req-1",
        "started_at": finished - timedelta(seconds=1),
        "finished_at": finished,
    }
    values.update(overrides)
    return SpeechEvent(**values)


def event_json(event: SpeechEvent) -> dict[str, Any]:
    """The event as the gateway POSTs it."""
    return event.model_dump(mode="json")


class BridgeProcess(ServiceProcess):
    """``python -m mqtt_bridge.cli serve`` as its own process, with test timings and no services."""

    def __init__(self, workdir: Path, broker_url: str, prefix: str, **settings: str) -> None:
        defaults = {
            "mqtt_url": broker_url,
            "topic_prefix": prefix,
            "outbox_path": str(workdir / "outbox.sqlite3"),
            "services": "{}",
            "ha_discovery": "false",
            "reconnect_min_delay": "0.1",
            "reconnect_max_delay": "0.5",
            "mqtt_keepalive": "5",
            "log_format": "text",
        }
        super().__init__("mqtt_bridge", "MQTT_BRIDGE", workdir, **{**defaults, **settings})

    def start(self, *, ready: bool = True, timeout: float = 30.0) -> None:
        """Start it; return once ``/readyz`` (or, with ``ready=False``, ``/healthz``) answers 200."""
        super().start(ready=ready, timeout=timeout)

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, no goodbye to the broker."""
        assert self.proc is not None
        super().kill()

    def stop(self) -> bool:
        """SIGTERM; True when it shut down cleanly, its lifespan's shutdown included."""
        return super().stop() and "Application shutdown complete" in self.log.read_text()
