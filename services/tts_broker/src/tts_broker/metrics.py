"""The broker's own Prometheus metrics, on the app's registry (HTTP metrics come from the shared package)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from tts_broker.cache import ResultCache
from tts_broker.engines.base import TtsEngine
from voicestack_common.model_registry import ModelRegistry
from voicestack_common.workers import WorkerPool

NAMESPACE = "tts"


class TtsMetrics:
    """Syntheses, characters, audio produced, speed, time to first audio, cache and pool state
    (summed over the loaded models; the registry counts loads and unloads)."""

    def __init__(self, registry: CollectorRegistry, models: ModelRegistry[TtsEngine], cache: ResultCache) -> None:
        def pools() -> list[WorkerPool[TtsEngine]]:
            return [p for m in models.loaded_ids if (p := models.pool(m)) is not None]

        ns = NAMESPACE
        self.syntheses = Counter(
            "syntheses",
            "Synthesis requests by outcome (ok, cached, error, cancelled).",
            ["engine", "outcome"],
            namespace=ns,
            registry=registry,
        )
        self.characters = Counter(
            "characters",
            "Characters of text synthesized (cache hits excluded).",
            ["engine"],
            namespace=ns,
            registry=registry,
        )
        self.audio_seconds = Counter(
            "audio_seconds",
            "Seconds of audio synthesized (cache hits excluded).",
            ["engine"],
            namespace=ns,
            registry=registry,
        )
        self.real_time_factor = Histogram(
            "real_time_factor",
            "Synthesis seconds per second of audio, per request.",
            ["engine"],
            namespace=ns,
            registry=registry,
            buckets=(0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 5),
        )
        self.time_to_first_audio = Histogram(
            "time_to_first_audio_seconds",
            "From admission to the first encoded audio bytes (cache misses).",
            ["engine"],
            namespace=ns,
            registry=registry,
            buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30),
        )
        self.cache_lookups = Counter(
            "cache_lookups", "Result cache lookups by result (hit, miss).", ["result"], namespace=ns, registry=registry
        )
        Gauge("cache_entries", "Results in the cache.", namespace=ns, registry=registry).set_function(
            lambda: len(cache)
        )
        Gauge("cache_bytes", "Bytes of audio in the cache.", namespace=ns, registry=registry).set_function(
            lambda: cache.size_bytes
        )
        Gauge("queue_depth", "Requests waiting for a free worker.", namespace=ns, registry=registry).set_function(
            lambda: sum(p.waiting for p in pools())
        )
        Gauge("workers_busy", "Workers synthesizing now.", namespace=ns, registry=registry).set_function(
            lambda: sum(p.busy for p in pools())
        )
        Gauge("workers", "Engine instances loaded (all models).", namespace=ns, registry=registry).set_function(
            lambda: sum(p.size for p in pools())
        )
