"""From uploaded audio to a transcript: limits, voice activity, the worker pool, metrics."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, replace

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from stt_broker.catalog import ALIAS, ModelChoice
from stt_broker.engines.base import Segment, SttEngine, TranscribeOptions, Transcript, Word
from stt_broker.sizing import ThreadBudget
from stt_broker.vad import SpeechDetector, TimeMap
from voicestack_common.audio import Pcm
from voicestack_common.errors import InvalidRequest
from voicestack_common.model_registry import ModelRegistry
from voicestack_common.workers import Done, WorkerPool, emitted


class SttMetrics:
    """Broker-specific metrics on the app's registry."""

    def __init__(
        self, registry: CollectorRegistry, models: ModelRegistry[SttEngine], budget: ThreadBudget | None = None
    ) -> None:
        def pools() -> list[WorkerPool[SttEngine]]:
            return [p for m in models.loaded_ids if (p := models.pool(m)) is not None]

        ns = "stt"
        self.transcriptions = Counter(
            "transcriptions", "Finished transcriptions.", ["engine", "outcome"], namespace=ns, registry=registry
        )
        self.inference_seconds = Histogram(
            "inference_seconds",
            "Time in VAD + engine per request.",
            ["engine"],
            namespace=ns,
            registry=registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300),
        )
        self.audio_seconds = Counter(
            "audio_seconds", "Seconds of audio received.", ["engine"], namespace=ns, registry=registry
        )
        self.speech_seconds = Counter(
            "speech_seconds", "Seconds of audio the VAD kept as speech.", ["engine"], namespace=ns, registry=registry
        )
        self.real_time_factor = Histogram(
            "real_time_factor",
            "Inference seconds per audio second.",
            ["engine"],
            namespace=ns,
            registry=registry,
            buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5),
        )
        queue_depth = Gauge(
            "queue_depth", "Requests waiting for a free model context.", namespace=ns, registry=registry
        )
        queue_depth.set_function(lambda: sum(p.waiting for p in pools()))
        busy = Gauge("workers_busy", "Model contexts decoding now.", namespace=ns, registry=registry)
        busy.set_function(lambda: sum(p.busy for p in pools()))
        workers = Gauge("workers", "Model contexts loaded (all models).", namespace=ns, registry=registry)
        workers.set_function(lambda: sum(p.size for p in pools()))
        if budget is not None:
            decode_threads = Histogram(
                "decode_threads",
                "CPU threads each whisper.cpp decode took as it started (elastic threads).",
                namespace=ns,
                registry=registry,
                buckets=(1, 2, 3, 4),
            )
            budget.observe = decode_threads.observe


@dataclass(frozen=True, slots=True)
class Limits:
    """What one request may ask of the broker."""

    max_audio_seconds: float
    timeout: float


class Transcriber:
    """Picks the model for a request, runs the transcription on its pool and keeps the metrics."""

    def __init__(
        self,
        models: ModelRegistry[SttEngine],
        choice: ModelChoice,
        detector: SpeechDetector | None,
        limits: Limits,
        metrics: SttMetrics,
        backend: str,
    ) -> None:
        self.models = models
        self.choice = choice
        self.detector = detector
        self.limits = limits
        self.metrics = metrics
        self.backend = backend

    @property
    def default_model(self) -> str:
        """The model a request with no model and no language gets (what ``whisper-1`` stands for)."""
        return self.choice.pick(None)

    def choose(self, requested: str | None, language: str | None) -> str:
        """The catalog model for a request: the one it names, else ``STT_MODEL``'s rule for its language.

        ``model_not_found`` (404) for a name not in the catalog; ``unsupported_language`` (422) when
        the request names an English-only model and another language.
        """
        if requested in (None, "", ALIAS):
            model_id = self.choice.pick(language)
        else:
            assert requested is not None
            model_id = requested.removeprefix(f"{self.backend}/")
        languages = self.models.get(model_id).languages
        if language is not None and languages is not None and language not in languages:
            hears = "is English-only" if languages == ("en",) else f"hears only {', '.join(languages)}"
            others = [m for m in self.models.ids if self.models.get(m).languages is None]
            hint = f"; name a multilingual model ({', '.join(others)})" if others else ""
            raise InvalidRequest(
                f"model {model_id} {hears}; it cannot transcribe language {language!r}{hint}",
                code="unsupported_language",
            )
        return model_id

    def check(self, audio: Pcm) -> None:
        """Reject audio over the configured length before it takes a worker."""
        if audio.duration > self.limits.max_audio_seconds:
            raise InvalidRequest(
                f"audio is {audio.duration:.1f} s long; the limit is {self.limits.max_audio_seconds:g} s",
                code="audio_too_long",
            )

    async def transcribe(
        self,
        audio: Pcm,
        options: TranscribeOptions,
        model: str,
        on_segment: Callable[[Segment], None] | None = None,
    ) -> Transcript:
        """Transcribe on a free worker of ``model`` (loaded if need be); ``on_segment`` runs on the worker thread."""
        self.check(audio)
        self.metrics.audio_seconds.labels(self.backend).inc(audio.duration)
        outcome = "error"
        try:
            async with self.models.use(model) as pool:
                transcript = await pool.submit(
                    lambda engine, cancel: self._run(engine, audio, options, on_segment, cancel),
                    timeout=self.limits.timeout,
                )
            outcome = "ok" if transcript.text else "empty"
            return transcript
        finally:
            self.metrics.transcriptions.labels(self.backend, outcome).inc()

    async def stream(self, audio: Pcm, options: TranscribeOptions, model: str) -> AsyncIterator[Segment | Transcript]:
        """Yield segments as the engine decodes them, then the finished transcript."""
        items: AsyncGenerator[Segment | Done[Transcript], None] = emitted(
            lambda emit: self.transcribe(audio, options, model, emit)
        )
        try:
            async for item in items:
                yield item.result if isinstance(item, Done) else item
        finally:
            await items.aclose()

    def _run(
        self,
        engine: SttEngine,
        audio: Pcm,
        options: TranscribeOptions,
        on_segment: Callable[[Segment], None] | None,
        cancel: threading.Event,
    ) -> Transcript:
        started = time.perf_counter()
        time_map = TimeMap.identity()
        speech = audio
        if self.detector is not None:
            found = self.detector.speech(audio)
            if found is None:
                self._observe(started, audio, 0.0)
                return Transcript("", options.language or "en", audio.duration, ())
            speech, time_map = found

        def place(segment: Segment) -> Segment:
            return _shift(segment, time_map, audio.duration)

        forward = (lambda seg: on_segment(place(seg))) if on_segment else None
        raw = engine.transcribe(speech, options, on_segment=forward, cancel=cancel)
        self._observe(started, audio, speech.duration)
        return replace(raw, duration=audio.duration, segments=tuple(place(s) for s in raw.segments))

    def _observe(self, started: float, audio: Pcm, speech_seconds: float) -> None:
        elapsed = time.perf_counter() - started
        self.metrics.inference_seconds.labels(self.backend).observe(elapsed)
        self.metrics.speech_seconds.labels(self.backend).inc(speech_seconds)
        if audio.duration > 0:
            self.metrics.real_time_factor.labels(self.backend).observe(elapsed / audio.duration)


def _shift(segment: Segment, time_map: TimeMap, duration: float) -> Segment:
    """Move a segment's times from the speech-only timeline back to the upload's.

    whisper.cpp pads its input, so its last end time can overshoot the audio: clamp it.
    """

    def at(t: float, is_end: bool = False) -> float:
        return min(time_map.original(t, is_end=is_end), round(duration, 3))

    return replace(
        segment,
        start=at(segment.start),
        end=at(segment.end, is_end=True),
        words=tuple(Word(at(w.start), at(w.end, True), w.word, w.probability) for w in segment.words),
    )


def confidence(transcript: Transcript) -> float | None:
    """exp of the token-weighted mean log-probability; ``None`` without decoded tokens."""
    weighted = [(s.avg_logprob, max(len(s.tokens), 1)) for s in transcript.segments if s.text]
    if not weighted:
        return None
    total = sum(n for _, n in weighted)
    return round(math.exp(sum(lp * n for lp, n in weighted) / total), 4)
