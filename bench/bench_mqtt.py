"""MQTT bridge benchmark: events per second end to end (HTTP in, subscriber out) and latency.

    uv run python bench/bench_mqtt.py [--events 2000] [--json out.json]

Runs Debian's mosquitto on a free loopback port and the bridge as its own process
(``python -m mqtt_bridge.cli serve``, default settings, outbox in a temp dir), and
a paho subscriber in this process. For each outbox sync mode (FULL, the default,
and NORMAL) it measures:
  * sequential: one client posting one event at a time; latency from the start of
    the POST to the subscriber receiving the event (p50/p99), and the POST's own
    latency (the 202, i.e. the durable commit);
  * concurrent: 16 clients posting at once; events per second from the first POST
    to the last delivery, and the same latencies under load;
  * backlog drain: events posted while mosquitto is stopped, then the rate at which
    the outbox empties once it is back.
Speed is never asserted in tests; the numbers go to docs/mqtt.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
from benchkit import emit, machine, percentile
from paho.mqtt.enums import CallbackAPIVersion

from devkit.mqtt_kit import BridgeProcess, Mosquitto, event_json, make_event, wait_until
from voicestack_common.events import EVENTS_PATH


def ms(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(values) * 1000, 2),
        "p99_ms": round(percentile(values, 99) * 1000, 2),
        "max_ms": round(max(values) * 1000, 2),
    }


class Arrivals:
    """A subscriber noting when each event_id first arrives (this process's perf_counter)."""

    def __init__(self, port: int, topic: str) -> None:
        self.seen: dict[str, float] = {}
        self.lock = threading.Lock()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.client.subscribe(topic, qos=1)
        assert subscribed.wait(10)

    def _on_message(self, _c: Any, _u: Any, message: paho.MQTTMessage) -> None:
        now = time.perf_counter()
        event_id = json.loads(message.payload)["event_id"]
        with self.lock:
            self.seen.setdefault(event_id, now)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def post_events(url: str, bodies: list[dict[str, Any]], clients: int) -> dict[str, tuple[float, float]]:
    """POST every body with ``clients`` concurrent senders; event_id → (post started, 202 received)."""
    times: dict[str, tuple[float, float]] = {}
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async def sender(http: httpx.AsyncClient) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            started = time.perf_counter()
            response = await http.post(EVENTS_PATH, json=body)
            if response.status_code != 202:
                raise RuntimeError(response.text)
            times[body["event_id"]] = (started, time.perf_counter())

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:
        await asyncio.gather(*(sender(http) for _ in range(clients)))
    return times


def run_load(bridge: BridgeProcess, arrivals: Arrivals, count: int, clients: int) -> dict[str, Any]:
    bodies = [event_json(make_event(f"benchmark event {i}")) for i in range(count)]
    times = asyncio.run(post_events(bridge.url, bodies, clients))
    ids = [body["event_id"] for body in bodies]
    wait_until(lambda: all(i in arrivals.seen for i in ids), 120, "every event to arrive")
    first = min(started for started, _ in times.values())
    last = max(arrivals.seen[i] for i in ids)
    end_to_end = [arrivals.seen[i] - times[i][0] for i in ids]
    accepted = [done - started for started, done in times.values()]
    return {
        "events": count,
        "clients": clients,
        "events_per_s": round(count / (last - first), 1),
        "post_to_delivery": ms(end_to_end),
        "post_202": ms(accepted),
    }


def run_drain(broker: Mosquitto, bridge: BridgeProcess, arrivals: Arrivals, count: int) -> dict[str, Any]:
    broker.stop()
    wait_until(lambda: httpx.get(bridge.url + "/readyz", timeout=5).status_code == 503, 30, "the bridge to notice")
    bodies = [event_json(make_event(f"backlog event {i}")) for i in range(count)]
    asyncio.run(post_events(bridge.url, bodies, 8))
    arrivals.close()
    broker.start()
    restarted = time.perf_counter()
    fresh = Arrivals(broker.port, arrivals_topic(bridge))
    ids = [body["event_id"] for body in bodies]
    wait_until(lambda: all(i in fresh.seen for i in ids), 120, "the backlog to drain")
    last = max(fresh.seen[i] for i in ids)
    fresh.close()
    return {
        "events": count,
        "seconds_from_broker_start": round(last - restarted, 2),
        "events_per_s": round(count / (last - restarted), 1),
    }


def arrivals_topic(bridge: BridgeProcess) -> str:
    return f"{bridge.env['MQTT_BRIDGE_TOPIC_PREFIX']}/transcripts"


def bench_mode(sync: str, events: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-mqtt-") as tmp:
        workdir = Path(tmp)
        broker = Mosquitto(workdir)
        broker.start()
        bridge = BridgeProcess(
            workdir,
            broker.url,
            f"bench-{sync.lower()}",
            outbox_sync=sync,
            log_format="json",
            reconnect_min_delay="0.2",
            reconnect_max_delay="0.5",
        )
        bridge.env.pop("MQTT_BRIDGE_MQTT_KEEPALIVE")
        try:
            bridge.start()
            arrivals = Arrivals(broker.port, arrivals_topic(bridge))
            run_load(bridge, arrivals, 200, 4)  # warm-up: connections, SQLite pages, code paths
            result = {
                "sequential": run_load(bridge, arrivals, max(200, events // 5), 1),
                "concurrent_16": run_load(bridge, arrivals, events, 16),
                "backlog_drain": run_drain(broker, bridge, arrivals, events),
            }
        finally:
            bridge.stop()
            broker.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results: dict[str, Any] = {
        "machine": machine(),
    }
    for sync in ("FULL", "NORMAL"):
        results[f"outbox_sync_{sync}"] = bench_mode(sync, args.events)
    emit(results, args.json)


if __name__ == "__main__":
    main()
