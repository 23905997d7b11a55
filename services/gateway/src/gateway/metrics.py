"""The gateway's own Prometheus metrics, next to the shared HTTP ones."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from voicestack_common.metrics import LATENCY_BUCKETS


class GatewayMetrics:
    """Broker calls, replica health, events, rate limiting and WebSocket traffic."""

    def __init__(self, registry: CollectorRegistry, namespace: str = "gateway") -> None:
        def counter(name: str, doc: str, labels: list[str]) -> Counter:
            return Counter(name, doc, labels, namespace=namespace, registry=registry)

        def gauge(name: str, doc: str, labels: list[str]) -> Gauge:
            return Gauge(name, doc, labels, namespace=namespace, registry=registry)

        self.upstream_requests = counter(
            "upstream_requests", "Requests to broker replicas by outcome.", ["upstream", "outcome"]
        )
        self.upstream_latency = Histogram(
            "upstream_request_duration_seconds",
            "Time to a broker's response headers.",
            ["upstream"],
            namespace=namespace,
            registry=registry,
            buckets=LATENCY_BUCKETS,
        )
        self.upstream_retries = counter("upstream_retries", "Requests retried on another replica.", ["upstream"])
        self.replica_up = gauge(
            "upstream_replica_up", "1 when the replica passes its health check.", ["upstream", "replica"]
        )
        self.events_sent = counter("events_sent", "Events the MQTT bridge accepted.", [])
        self.events_dropped = counter("events_dropped", "Events given up on, by reason.", ["reason"])
        self.events_queued = gauge("events_queued", "Events waiting to be sent.", [])
        self.rate_limited = counter("rate_limited", "Requests refused by a rate limit.", ["operation"])
        self.ws_connections = gauge("ws_connections", "Open WebSocket connections.", [])
        self.ws_messages = counter("ws_messages", "WebSocket messages received, by type.", ["type"])
        self.live_sessions = gauge("live_sessions", "Live transcription sessions relayed now.", [])
        self.live_failovers = counter(
            "live_failovers", "Live sessions moved to another STT replica after theirs dropped.", []
        )
