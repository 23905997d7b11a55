"""What every live session shares: the model catalog, the VAD model, defaults, limits and metrics."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from stt_broker.engines.base import SttEngine, TranscribeOptions, Transcript
from stt_broker.live.turn import TurnModel
from stt_broker.settings import SttSettings
from voicestack_common.audio import STT_SAMPLE_RATE, Pcm, Samples
from voicestack_common.live import EndOfTurn
from voicestack_common.model_registry import ModelRegistry
from voicestack_common.workers import Priority, WorkerPool

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LiveConfig:
    """Server-side defaults a session's ``start`` may override, and limits it may not."""

    silence_ms: int = 600
    end_of_turn: EndOfTurn = "silence"
    """The default; sessions get ``silence`` whatever they ask when the runtime has no turn model."""
    turn_pause_ms: int = 200
    """The pause after which the turn model is asked and the final's decode starts."""
    turn_max_silence_ms: int = 2_000
    """The longest pause the turn model may hold an utterance open for."""
    vad_threshold: float = 0.5
    prefix_padding_ms: int = 300
    partial_interval_ms: int = 500
    fit_partials: bool = True
    fit_finals: bool = False
    max_utterance_seconds: float = 30.0
    min_speech_ms: int = 96
    """Speech shorter than this (clicks, breaths) opens no utterance."""
    end_padding_ms: int = 200
    """Audio kept after the last speech frame in the decoded utterance."""
    max_pending_finals: int = 2
    """Utterances awaiting their final before the session stops reading audio (back-pressure)."""
    max_pending_events: int = 64
    """Events not yet sent before the session stops reading audio (a client that does not read)."""
    decode_timeout: float = 60.0
    max_sessions: int = 16
    idle_timeout: float = 30.0
    max_session_seconds: float = 4 * 3600.0
    max_frame_bytes: int = 256 * 1024

    @classmethod
    def from_settings(cls, settings: SttSettings) -> LiveConfig:
        """The broker's live settings."""
        return cls(
            silence_ms=settings.live_silence_ms,
            end_of_turn=settings.live_end_of_turn,
            turn_pause_ms=settings.live_turn_pause_ms,
            turn_max_silence_ms=settings.live_turn_max_silence_ms,
            vad_threshold=settings.vad_threshold,
            prefix_padding_ms=settings.live_prefix_padding_ms,
            partial_interval_ms=settings.live_partial_interval_ms,
            fit_partials=settings.live_fit_partials,
            fit_finals=settings.live_fit_finals,
            max_utterance_seconds=settings.live_max_utterance_seconds,
            decode_timeout=settings.inference_timeout,
            max_sessions=settings.live_max_sessions,
            idle_timeout=settings.live_idle_timeout,
            max_session_seconds=settings.live_max_session_seconds,
            max_frame_bytes=settings.live_max_frame_bytes,
        )


class LiveMetrics:
    """The live sessions' metrics on the app's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        ns, sub = "stt", "live"
        self.active = Gauge(
            "sessions_active", "Live sessions open now.", namespace=ns, subsystem=sub, registry=registry
        )
        self.sessions = Counter(
            "sessions", "Live sessions ended, by reason.", ["reason"], namespace=ns, subsystem=sub, registry=registry
        )
        self.final_latency = Histogram(
            "final_latency_seconds",
            "End of speech (endpoint) to the final sent.",
            namespace=ns,
            subsystem=sub,
            registry=registry,
            buckets=(0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10),
        )
        self.partial_interval = Histogram(
            "partial_interval_seconds",
            "Time between consecutive partials of one utterance (the partial cadence).",
            namespace=ns,
            subsystem=sub,
            registry=registry,
            buckets=(0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5),
        )
        self.audio_seconds = Counter(
            "audio_seconds", "Seconds of audio streamed in.", namespace=ns, subsystem=sub, registry=registry
        )
        self.partials = Counter("partials", "Partials sent.", namespace=ns, subsystem=sub, registry=registry)
        self.partials_skipped = Counter(
            "partials_skipped",
            "Partial decodes skipped: every context busy, or the previous partial still running.",
            ["reason"],
            namespace=ns,
            subsystem=sub,
            registry=registry,
        )
        self.finals = Counter(
            "finals", "Finals sent, by outcome.", ["outcome"], namespace=ns, subsystem=sub, registry=registry
        )
        self.early_decodes = Counter(
            "early_decodes",
            "Decodes started at a pause, by fate: used as the final, or dropped (speech went on, or the "
            "utterance ended elsewhere).",
            ["fate"],
            namespace=ns,
            subsystem=sub,
            registry=registry,
        )
        self.turn_checks = Counter(
            "turn_checks",
            "Questions to the end-of-turn model at a pause, by its answer (complete, incomplete, failed).",
            ["verdict"],
            namespace=ns,
            subsystem=sub,
            registry=registry,
        )


class LiveRuntime:
    """Shared by all sessions of one broker; each session decodes on its model's pool."""

    def __init__(
        self,
        models: ModelRegistry[SttEngine],
        choose: Callable[[str | None, str | None], str],
        vad_session: Any,
        metrics: LiveMetrics,
        config: LiveConfig,
        *,
        default_language: str | None,
        turn_model: TurnModel | None = None,
    ) -> None:
        self.models = models
        self.choose = choose
        """``(requested model, language) -> catalog id`` (``Transcriber.choose``); raises for unknown models."""
        self.vad_session = vad_session
        self.metrics = metrics
        self.config = config
        self.default_language = default_language
        self.turn_model = turn_model
        self.open_sessions = 0
        # The turn model runs one question at a time on a thread of its own (~45 ms on one core).
        self._turn_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="turn-model")

    async def turn_complete(self, samples: Samples) -> bool | None:
        """Whether the speaker has finished at the end of ``samples``; ``None`` without a model or on failure."""
        model = self.turn_model
        if model is None:
            return None
        try:
            complete = await asyncio.get_running_loop().run_in_executor(self._turn_thread, model.complete, samples)
        except Exception:  # a model that fails leaves the silence rule in charge, never the session broken
            logger.exception("the end-of-turn model failed")
            self.metrics.turn_checks.labels("failed").inc()
            return None
        self.metrics.turn_checks.labels("complete" if complete else "incomplete").inc()
        return complete

    def close(self) -> None:
        """Stop the turn model's thread."""
        self._turn_thread.shutdown(wait=False, cancel_futures=True)

    async def decode(
        self,
        pool: WorkerPool[SttEngine],
        samples: Samples,
        options: TranscribeOptions,
        *,
        urgent: bool,
        released: asyncio.Event | None = None,
    ) -> tuple[Transcript, float]:
        """Decode 16 kHz audio on ``pool``; returns the transcript and the seconds the engine took.

        ``released`` is set when the engine has let go of the audio, which a cancelled decode does only
        at the end of its encoder pass (whisper.cpp cannot stop inside it), after this call has returned.
        """
        audio = Pcm(samples, STT_SAMPLE_RATE)
        loop = asyncio.get_running_loop()

        def run(engine: SttEngine, cancel: Any) -> tuple[Transcript, float]:
            started = time.perf_counter()
            try:
                transcript = engine.transcribe(audio, options, cancel=cancel)
            finally:
                if released is not None:
                    loop.call_soon_threadsafe(released.set)
            return transcript, time.perf_counter() - started

        return await pool.submit(
            run, timeout=self.config.decode_timeout, priority=Priority.URGENT if urgent else Priority.NORMAL
        )
