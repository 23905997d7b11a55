"""From a validated request to encoded audio: the model's worker pool, streaming, the cache, metrics."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import AsyncGenerator, Callable, Collection, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import anyio

from tts_broker.cache import CachedAudio, CacheKey, ResultCache
from tts_broker.catalog import ALIASES
from tts_broker.engines.base import SpeechRequest, TtsEngine, VoiceBlend
from tts_broker.languages import LANGUAGES, normalize_lang_code, supported_codes, voice_lang_code
from tts_broker.metrics import TtsMetrics
from tts_broker.voices import VoiceCatalog, build_catalog, voice_info
from voicestack_common.contracts.tts import VoiceInfo
from voicestack_common.encode import FORMATS, AudioEncoder, finalize_wav
from voicestack_common.errors import InvalidRequest, VoicestackError
from voicestack_common.model_registry import ModelRegistry
from voicestack_common.workers import Done, emitted

logger = logging.getLogger(__name__)

MIN_SPEED, MAX_SPEED = 0.25, 4.0
# A remote server's voice list is re-read this often; a local model's never changes.
CATALOG_TTL_S = 60.0


@dataclass(frozen=True, slots=True)
class Chunk:
    """Encoded bytes ready to send, and the seconds of audio they complete."""

    data: bytes
    seconds: float


@dataclass(frozen=True, slots=True)
class SpeechJob:
    """A validated request: what to say, how, and in which format."""

    request: SpeechRequest
    format: str
    model: str
    """The catalog model that speaks it."""

    @property
    def key(self) -> CacheKey:
        """What identifies its result in the cache."""
        r = self.request
        return (r.text, r.voice.spec, r.lang_code, r.speed, self.format, self.model)


@dataclass(frozen=True, slots=True)
class SpeechResult:
    """A whole synthesized file."""

    audio: bytes
    sample_rate: int
    duration: float


@dataclass(frozen=True, slots=True)
class Defaults:
    """What a request that leaves a field out gets, and its limits."""

    lang_code: str
    speed: float
    max_text_length: int
    timeout: float
    default_voice: str
    offered_voices: tuple[str, ...] | None
    openai_voices: dict[str, list[str]]


@dataclass(frozen=True, slots=True)
class EngineTraits:
    """What every model of the catalog shares, read from the default model's engine at start."""

    backend: str
    sample_rate: int
    static_voices: bool
    unavailable_languages: Mapping[str, str]
    provider: str | None

    @classmethod
    def of(cls, engine: TtsEngine) -> EngineTraits:
        """The traits of a loaded engine."""
        return cls(
            engine.backend,
            engine.sample_rate,
            engine.static_voices,
            MappingProxyType(dict(engine.unavailable_languages)),
            getattr(engine, "provider", None),
        )


class Synthesizer:
    """Picks the model, validates requests, runs them on its pool, streams encoded audio, keeps the cache."""

    def __init__(
        self,
        models: ModelRegistry[TtsEngine],
        default_model: str,
        traits: EngineTraits,
        cache: ResultCache,
        metrics: TtsMetrics,
        defaults: Defaults,
    ) -> None:
        self.models = models
        self.model = default_model
        """The default model: for requests that name none or an alias, and Wyoming's."""
        self.traits = traits
        self.cache = cache
        self.metrics = metrics
        self.defaults = defaults
        self.backend = traits.backend
        self.sample_rate = traits.sample_rate
        self._catalog: VoiceCatalog | None = None
        self._catalog_at = 0.0

    def choose(self, requested: str | None) -> str:
        """The catalog model a request names; the default for none or an alias; ``model_not_found`` (404)
        for a name not in the catalog."""
        if requested in (None, "", *ALIASES):
            return self.model
        assert requested is not None
        return self.models.get(requested).id

    async def _list_voices(self) -> tuple[str, ...]:
        async with self.models.use(self.model) as pool:
            return await anyio.to_thread.run_sync(pool.engines[0].list_voices)

    async def catalog(self) -> VoiceCatalog:
        """The voices offered now (a remote server's list is re-read once it is stale)."""
        fresh = self.traits.static_voices or time.monotonic() - self._catalog_at < CATALOG_TTL_S
        if self._catalog is not None and fresh:
            return self._catalog
        try:
            voices = await self._list_voices()
        except VoicestackError:
            if self._catalog is None:
                raise
            logger.warning("could not refresh the voice list; keeping the last one")
            self._catalog_at = time.monotonic()
            return self._catalog
        d = self.defaults
        catalog, warnings = build_catalog(
            voices, default_voice=d.default_voice, offered=d.offered_voices, openai_voices=d.openai_voices
        )
        if self._catalog is None or catalog.offered != self._catalog.offered:
            for warning in warnings:
                logger.warning(warning)
        self._catalog, self._catalog_at = catalog, time.monotonic()
        return catalog

    def details(self, catalog: VoiceCatalog) -> list[VoiceInfo]:
        """Each offered voice's language, gender and availability, in the catalog's order."""
        unavailable = self.traits.unavailable_languages
        return [voice_info(name, unavailable, self.defaults.lang_code) for name in catalog.offered]

    def languages(self) -> list[str]:
        """ISO 639-1 codes of the languages this engine can speak here."""
        unavailable = self.traits.unavailable_languages
        return list(dict.fromkeys(lang.iso for lang in LANGUAGES.values() if lang.code not in unavailable))

    def language_for(self, lang_code: str | None, blend: VoiceBlend) -> str:
        """The language to speak: the request's, else the (first) voice's own, else the default;
        ``InvalidRequest`` when it is unknown or cannot be spoken here."""
        try:
            lang = normalize_lang_code(lang_code) if lang_code else None
        except KeyError:
            raise InvalidRequest(
                f"unknown lang_code {lang_code!r}; use one of {supported_codes()}", code="unsupported_lang_code"
            ) from None
        lang = lang or voice_lang_code(blend.names[0]) or self.defaults.lang_code
        reason = self.traits.unavailable_languages.get(lang)
        if reason is not None:
            spoken = [code for code in LANGUAGES if code not in self.traits.unavailable_languages]
            raise InvalidRequest(
                f"{LANGUAGES[lang].name} ({lang}) cannot be spoken here: {reason}",
                code="unsupported_language",
                details={"lang_code": lang, "available_lang_codes": spoken},
            )
        return lang

    def output_rate(self, fmt: str) -> int:
        """The sample rate of the encoded audio (Opus always runs at 48 kHz)."""
        return FORMATS[fmt].codec_rate or self.sample_rate

    async def job(
        self,
        text: str,
        voice: str | None,
        lang_code: str | None,
        speed: float | None,
        fmt: str,
        formats: Collection[str],
        model: str | None = None,
    ) -> SpeechJob:
        """Check every field of a request, with a specific error code for each problem."""
        model_id = self.choose(model)
        if not text.strip():
            raise InvalidRequest("the text is empty", code="empty_text")
        if len(text) > self.defaults.max_text_length:
            raise InvalidRequest(
                f"the text is {len(text)} characters long; the limit is {self.defaults.max_text_length}",
                code="text_too_long",
            )
        fmt = fmt.strip().lower()
        if fmt not in formats:
            raise InvalidRequest(
                f"unknown audio format {fmt!r}; use one of {', '.join(formats)}", code="unsupported_format"
            )
        speed = self.defaults.speed if speed is None else speed
        if not math.isfinite(speed) or not MIN_SPEED <= speed <= MAX_SPEED:
            raise InvalidRequest(
                f"speed must be between {MIN_SPEED} and {MAX_SPEED}, got {speed}", code="invalid_speed"
            )
        blend = (await self.catalog()).resolve(voice)
        lang = self.language_for(lang_code, blend)
        return SpeechJob(SpeechRequest(text, blend, lang, float(speed)), fmt, model_id)

    async def stream(self, job: SpeechJob) -> AsyncGenerator[Chunk, None]:
        """Encoded audio as it is synthesized (or at once, from the cache)."""
        if self.cache.enabled:
            hit = self.cache.get(job.key)
            self.metrics.cache_lookups.labels("hit" if hit else "miss").inc()
            if hit is not None:
                self.metrics.syntheses.labels(self.backend, "cached").inc()
                yield Chunk(hit.data, hit.duration)
                return
        started = time.perf_counter()
        parts: list[bytes] = []
        seconds = 0.0
        outcome = "cancelled"  # unless it ends, or fails: the caller went away
        try:
            # Held until the last chunk is out, so the registry never unloads a model with work on it.
            async with self.models.use(job.model) as pool:
                items: AsyncGenerator[Chunk | Done[None], None] = emitted(
                    lambda emit: pool.submit(
                        lambda engine, cancel: self._run(engine, job, cancel, emit), timeout=self.defaults.timeout
                    )
                )
                try:
                    async for chunk in items:
                        if isinstance(chunk, Done):
                            break
                        if not parts:
                            elapsed = time.perf_counter() - started
                            self.metrics.time_to_first_audio.labels(self.backend).observe(elapsed)
                        parts.append(chunk.data)
                        seconds += chunk.seconds
                        yield chunk
                finally:
                    # The caller went away, or failed: the worker stops before its next sentence.
                    await items.aclose()
            outcome = "ok"
            data = b"".join(parts)
            self.cache.put(job.key, CachedAudio(finalize_wav(data) if job.format == "wav" else data, seconds))
        except Exception:
            outcome = "error"
            raise
        finally:
            self.metrics.syntheses.labels(self.backend, outcome).inc()

    async def synthesize(self, job: SpeechJob) -> SpeechResult:
        """The whole file (a WAV with its exact length)."""
        chunks = [chunk async for chunk in self.stream(job)]
        data = b"".join(c.data for c in chunks)
        return SpeechResult(
            finalize_wav(data) if job.format == "wav" else data,
            self.output_rate(job.format),
            sum(c.seconds for c in chunks),
        )

    def _run(self, engine: TtsEngine, job: SpeechJob, cancel: threading.Event, emit: Callable[[Chunk], None]) -> None:
        """On a worker thread: synthesize, encode and hand over piece by piece."""
        started = time.perf_counter()
        encoder = AudioEncoder(job.format, engine.sample_rate)
        total = pending = 0.0
        for pcm in engine.stream(job.request, cancel):
            if cancel.is_set():
                return
            data = encoder.encode(pcm.samples)
            total += pcm.duration
            pending += pcm.duration
            if data:
                emit(Chunk(data, pending))
                pending = 0.0
        if cancel.is_set():
            return
        if total == 0:
            raise InvalidRequest("the text has nothing that can be spoken", code="empty_text")
        emit(Chunk(encoder.finish(), pending))
        elapsed = time.perf_counter() - started
        self.metrics.characters.labels(self.backend).inc(len(job.request.text))
        self.metrics.audio_seconds.labels(self.backend).inc(total)
        self.metrics.real_time_factor.labels(self.backend).observe(elapsed / total)
        logger.debug(
            "synthesized",
            extra={"text": job.request.text, "audio_seconds": round(total, 3), "elapsed": round(elapsed, 3)},
        )
