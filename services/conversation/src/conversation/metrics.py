"""The conversation service's own Prometheus metrics, on the app's registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

NAMESPACE = "conversation"
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class ConversationMetrics:
    """Turns by responder and outcome, time to the first token, reply length, purged conversations."""

    def __init__(self, registry: CollectorRegistry) -> None:
        ns = NAMESPACE
        self.turns = Counter(
            "turns",
            "Turns by responder and outcome (ok, truncated, interrupted, error).",
            ["responder", "outcome"],
            namespace=ns,
            registry=registry,
        )
        self.first_token = Histogram(
            "first_token_seconds",
            "Seconds from the user's message to the responder's first text.",
            ["responder"],
            namespace=ns,
            registry=registry,
            buckets=_LATENCY_BUCKETS,
        )
        self.reply_seconds = Histogram(
            "reply_seconds",
            "Seconds a whole reply took.",
            ["responder"],
            namespace=ns,
            registry=registry,
            buckets=_LATENCY_BUCKETS,
        )
        self.reply_characters = Counter(
            "reply_characters", "Characters of replies produced.", ["responder"], namespace=ns, registry=registry
        )
        self.tool_calls = Counter(
            "tool_calls",
            "Tool calls the service ran, by tool and outcome (ok, error, timeout, refused, cancelled).",
            ["tool", "status"],
            namespace=ns,
            registry=registry,
        )
        self.tool_seconds = Histogram(
            "tool_seconds",
            "Seconds a tool call took.",
            ["tool"],
            namespace=ns,
            registry=registry,
            buckets=_LATENCY_BUCKETS,
        )
        self.purged = Counter(
            "purged_conversations", "Conversations deleted by the retention purge.", namespace=ns, registry=registry
        )
