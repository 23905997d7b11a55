"""No lost event under load: the MQTT broker down for 30 s, and the bridge SIGKILLed.

Four client threads post events to the bridge (a real process, its outbox on disk) as the gateway
does: an event is posted again, with the same ``event_id``, until the bridge answers 2xx. A
persistent subscriber (clean session, QoS 1) records what arrives. ``VOICESTACK_FAULT_OUTAGE_S``
sets the broker's outage (30 s by default).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
import pytest

from devkit.mqtt_kit import BridgeProcess, Mosquitto, Subscriber, event_json, make_event, subscriber, wait_until
from tests.reliability.faults import Load
from tests.reliability.figures import record
from voicestack_common.events import EVENTS_PATH

pytestmark = pytest.mark.slow

OUTAGE_S = float(os.environ.get("VOICESTACK_FAULT_OUTAGE_S", "30"))
# Between two events of one client: four clients make about 40 events a second.
PACE_S = 0.1
PUBLISH_BATCH = 100  # MQTT_BRIDGE_PUBLISH_BATCH: at most this many are in flight when the bridge dies


class Poster:
    """The load: each request posts one new event until the bridge takes it (the gateway's rule)."""

    def __init__(self, bridge: BridgeProcess) -> None:
        self.bridge = bridge
        self.posted: dict[str, dict[str, Any]] = {}
        self.retries = 0
        self.statuses: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, client: int, n: int) -> str:
        event = event_json(make_event(f"client {client} event {n}"))
        with self._lock:
            self.posted[event["event_id"]] = event
        attempts = 0
        while True:
            attempts += 1
            try:
                status = httpx.post(self.bridge.url + EVENTS_PATH, json=event, timeout=30).status_code
            except httpx.TransportError as exc:
                status_name = type(exc).__name__
            else:
                status_name = str(status)
                if status < 300:
                    break
            with self._lock:
                self.statuses[status_name] += 1
            assert attempts < 600, f"event {event['event_id']} never accepted (last: {status_name})"
            time.sleep(0.1)
        with self._lock:
            self.statuses["202"] += 1
            self.retries += attempts - 1
        time.sleep(PACE_S)
        return "accepted"


def _delivery(sub: Subscriber, topic: str, posted: dict[str, dict[str, Any]]) -> dict[str, int]:
    wait_until(lambda: {m.json()["event_id"] for m in sub.on(topic)} >= set(posted), 120, "every posted event")
    received = sub.on(topic)
    counts = Counter(m.json()["event_id"] for m in received)
    # At least once: a repeat is an exact copy with the same event_id.
    assert all(m.json() == posted[m.json()["event_id"]] for m in received)
    return {
        "events_posted": len(posted),
        "lost": len(set(posted) - set(counts)),
        "unknown": len(set(counts) - set(posted)),
        "duplicated_ids": sum(1 for n in counts.values() if n > 1),
        "deliveries": len(received),
    }


def _outbox_rows(path: Path) -> tuple[int, int]:
    """(rows waiting, ids remembered) in a stopped bridge's outbox."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        waiting = db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        return waiting, db.execute("SELECT COUNT(*) FROM seen").fetchone()[0]


def test_the_broker_down_under_load_loses_no_event(tmp_path: Path, prefix: str) -> None:
    broker = Mosquitto(tmp_path, persistence=True)
    broker.start()
    bridge = BridgeProcess(tmp_path, broker.url, prefix)
    topic = f"{prefix}/transcripts"
    try:
        with subscriber(
            broker.port, [topic], protocol=paho.MQTTv311, client_id=f"faults-{prefix}", clean_session=False
        ) as sub:
            bridge.start()
            poster = Poster(bridge)
            with Load(poster, clients=4) as load:
                load.run_until(40, 120)
                broker.stop()
                down_since = time.monotonic()
                posted_before = len(poster.posted)
                while time.monotonic() - down_since < OUTAGE_S:
                    time.sleep(0.2)
                posted_during = len(poster.posted) - posted_before
                broker.start()
                load.run_until(40, 120)
            figures = _delivery(sub, topic, poster.posted)
            assert load.failures == []
            assert figures["lost"] == 0
            assert figures["unknown"] == 0
            assert poster.retries == 0  # the bridge kept accepting while the broker was away
            assert bridge.stop()
        waiting, remembered = _outbox_rows(tmp_path / "outbox.sqlite3")
        assert waiting == 0
        assert remembered == len(poster.posted)
        record(
            "faults",
            "MQTT broker down under load",
            {**figures, "outage_s": OUTAGE_S, "posted_during_outage": posted_during, "client_retries": poster.retries},
        )
    finally:
        bridge.kill()
        broker.stop()


def test_the_bridge_sigkilled_under_load_loses_no_event(tmp_path: Path, prefix: str, mosquitto: Mosquitto) -> None:
    bridge = BridgeProcess(tmp_path, mosquitto.url, prefix)
    topic = f"{prefix}/transcripts"
    try:
        with subscriber(mosquitto.port, [topic]) as sub:
            bridge.start()
            poster = Poster(bridge)
            with Load(poster, clients=4) as load:
                load.run_until(40, 120)
                bridge.kill()
                posted_at_kill = len(poster.posted)
                time.sleep(2.0)  # clients meet a dead port and keep their events
                bridge.start()
                load.run_until(40, 120)
            figures = _delivery(sub, topic, poster.posted)
            assert load.failures == []
            assert figures["lost"] == 0
            assert figures["unknown"] == 0
            # Only events in flight at the kill may come twice: at most one publish batch.
            assert figures["duplicated_ids"] <= PUBLISH_BATCH
            assert bridge.stop()
        waiting, remembered = _outbox_rows(tmp_path / "outbox.sqlite3")
        assert waiting == 0
        assert remembered == len(poster.posted)
        record(
            "faults",
            "MQTT bridge SIGKILLed under load",
            {
                **figures,
                "posted_before_kill": posted_at_kill,
                "client_retries": poster.retries,
                "refused_attempts": {k: v for k, v in poster.statuses.items() if k != "202"},
            },
        )
    finally:
        bridge.kill()
