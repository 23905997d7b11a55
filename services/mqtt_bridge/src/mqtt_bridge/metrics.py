"""The bridge's Prometheus metrics, on the app's registry next to the HTTP ones."""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from mqtt_bridge.outbox import OutboxStats

# From 5 ms (broker on loopback) to 1 h (events that waited out a broker outage).
DELIVERY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


class BridgeMetrics:
    """Outbox, publish request, MQTT connection, health poll and command metrics."""

    def __init__(self, registry: CollectorRegistry, namespace: str = "mqtt_bridge") -> None:
        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(name, doc, labels, namespace=namespace, registry=registry)

        self.accepted = counter("events_accepted", "Events stored in the outbox, by type.", ("type",))
        self.duplicates = counter("events_duplicate", "Events whose event_id was accepted before (not stored).")
        self.publishes = counter(
            "publishes",
            "POST /v1/publish requests, by outcome (accepted, duplicate, refused by the allow-list).",
            ("outcome",),
        )
        for outcome in ("accepted", "duplicate", "refused"):
            self.publishes.labels(outcome=outcome)
        self.published = counter("events_published", "Events acknowledged by the broker (PUBACK), by type.", ("type",))
        self.publish_failures = counter("publish_failures", "Event publishes that failed or timed out (retried).")
        self.reconnects = counter("mqtt_reconnects", "MQTT connections established after a lost or failed one.")
        self.connect_failures = counter("mqtt_connect_failures", "Failed MQTT connection attempts.")
        self.health_polls = counter(
            "health_probes", "Health probes of polled services, by service and result.", ("service", "result")
        )
        self.commands = counter("commands", "MQTT commands answered, by command and outcome.", ("command", "outcome"))
        self.delivery = Histogram(
            "event_delivery_seconds",
            "Time from acceptance to the broker's PUBACK.",
            namespace=namespace,
            registry=registry,
            buckets=DELIVERY_BUCKETS,
        )
        self.connected = Gauge(
            "mqtt_connected", "1 while connected to the MQTT broker.", namespace=namespace, registry=registry
        )
        self._depth = Gauge(
            "outbox_depth", "Events in the outbox (pending and in flight).", namespace=namespace, registry=registry
        )
        self._inflight = Gauge(
            "outbox_inflight", "Events published and awaiting their PUBACK.", namespace=namespace, registry=registry
        )
        self._oldest = Gauge(
            "outbox_oldest_pending_seconds",
            "Age of the oldest event in the outbox (0 when empty).",
            namespace=namespace,
            registry=registry,
        )

    def watch_outbox(self, stats: Callable[[], OutboxStats | None]) -> None:
        """Read the outbox gauges from ``stats`` at scrape time."""

        def read(field: str) -> Callable[[], float]:
            def value() -> float:
                current = stats()
                if current is None:
                    return 0.0
                if field == "oldest":
                    oldest = current.oldest_accepted_at
                    return max(0.0, time.time() - oldest) if oldest is not None else 0.0
                return float(getattr(current, field))

            return value

        self._depth.set_function(read("depth"))
        self._inflight.set_function(read("inflight"))
        self._oldest.set_function(read("oldest"))
