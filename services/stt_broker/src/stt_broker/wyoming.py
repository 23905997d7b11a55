"""Wyoming speech-to-text (Home Assistant Assist): the same transcriber, pool and limits as HTTP.

    → describe                      ← info (every catalog model and its languages)
    → transcribe (name? language?)  → audio-start  → audio-chunk…  → audio-stop
    ← transcript-start  ← transcript-chunk… (one per decoded segment)  ← transcript (language)  ← transcript-stop

``transcribe``'s ``name`` picks a catalog model; without it the broker chooses
by language (``STT_MODEL``), and the transcript says which language it heard.

Chunks in another rate, width or channel count than ``audio-start`` announced
are converted; formats that cannot be read, and audio outside
``audio-start``/``audio-stop``, are answered with an ``error`` event and the
connection is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from functools import partial

import numpy as np
from wyoming.asr import Transcribe, Transcript, TranscriptChunk, TranscriptStart, TranscriptStop
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.event import Event
from wyoming.info import AsrModel, AsrProgram, Attribution, Describe, Info

from stt_broker import __version__
from stt_broker.deps import options_from_form
from stt_broker.engines.base import Segment, TranscribeOptions
from stt_broker.languages import LANGUAGES
from stt_broker.settings import SttSettings
from stt_broker.transcriber import Transcriber, confidence
from voicestack_common.audio import STT_SAMPLE_RATE, Pcm, Samples, resample
from voicestack_common.errors import InvalidRequest
from voicestack_common.event_outbox import EventOutbox, OutboxCounters
from voicestack_common.events import SpeechEvent, utc_now
from voicestack_common.metrics import HttpMetrics
from voicestack_common.wyoming import (
    ProtocolError,
    WyomingHandler,
    WyomingMetrics,
    check_format,
    chunk_samples,
    serve_wyoming,
)

logger = logging.getLogger(__name__)

_ENGINES = {
    "whispercpp": Attribution(name="ggml-org", url="https://github.com/ggml-org/whisper.cpp"),
    "faster-whisper": Attribution(name="SYSTRAN", url="https://github.com/SYSTRAN/faster-whisper"),
}
_WHISPER = Attribution(name="OpenAI", url="https://github.com/openai/whisper")


def build_info(transcriber: Transcriber) -> Info:
    """What ``describe`` answers: one program, every catalog model and the languages it transcribes."""
    backend = transcriber.backend
    models = [
        AsrModel(
            name=model_id,
            description=f"Whisper {model_id}" + (" (default)" if model_id == transcriber.default_model else ""),
            attribution=_WHISPER,
            installed=True,
            version=None,
            languages=list(transcriber.models.get(model_id).languages or sorted(LANGUAGES)),
        )
        for model_id in transcriber.models.ids
    ]
    program = AsrProgram(
        name="voicestack-stt",
        description=f"voicestack speech-to-text ({backend})",
        attribution=_ENGINES.get(backend.split("/")[0], _ENGINES["whispercpp"]),
        installed=True,
        version=__version__,
        models=models,
        supports_transcript_streaming=True,
    )
    return Info(asr=[program])


class SttWyoming:
    """What every connection shares: the transcriber, the info event, limits, events to the bridge."""

    def __init__(
        self, settings: SttSettings, transcriber: Transcriber, metrics: WyomingMetrics, outbox: EventOutbox | None
    ) -> None:
        self.settings = settings
        self.transcriber = transcriber
        self.metrics = metrics
        self.outbox = outbox
        self.info = build_info(transcriber).event()


class SttHandler(WyomingHandler):
    """One Wyoming connection to the STT broker."""

    def __init__(self, service: SttWyoming, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        super().__init__(reader, writer, service.metrics)
        self.service = service
        self._language: str | None = None
        self._model: str | None = None
        self._start: AudioStart | None = None
        self._parts: list[Samples] = []
        self._seconds = 0.0

    async def on_event(self, event: Event) -> bool:
        if Describe.is_type(event.type):
            await self.write_event(self.service.info)
        elif Transcribe.is_type(event.type):
            await self.finish_work()
            transcribe = Transcribe.from_event(event)
            self._language, self._model = transcribe.language, transcribe.name
            self._request()  # an unknown language or model is refused now, before any audio
        elif AudioStart.is_type(event.type):
            await self.finish_work()
            start = AudioStart.from_event(event)
            check_format(start.rate, start.width, start.channels)
            self._start, self._parts, self._seconds = start, [], 0.0
        elif AudioChunk.is_type(event.type):
            self._add(AudioChunk.from_event(event))
        elif AudioStop.is_type(event.type):
            if self._start is None:
                raise ProtocolError("audio-stop without audio-start", code="audio_not_started")
            samples = np.concatenate(self._parts) if self._parts else np.zeros(0, np.float32)
            audio = Pcm(samples, self._start.rate)
            options, model = self._request()
            self._start, self._parts, self._language, self._model = None, [], None, None
            self.start_work("transcribe", self._transcribe(audio, options, model))
        return True  # other events are dropped, as the protocol asks

    def _request(self) -> tuple[TranscribeOptions, str]:
        options = options_from_form(self._language, None, 0.0, False, self.service.settings.default_language)
        return options, self.service.transcriber.choose(self._model, options.language)

    def _add(self, chunk: AudioChunk) -> None:
        start = self._start
        if start is None:
            raise ProtocolError("audio-chunk before audio-start", code="audio_not_started")
        samples = chunk_samples(chunk.audio, chunk.width, chunk.channels)
        if chunk.rate != start.rate:
            check_format(chunk.rate, chunk.width, chunk.channels)
            samples = resample(Pcm(samples, chunk.rate), start.rate).samples
        self._seconds += len(samples) / start.rate
        limit = self.service.transcriber.limits.max_audio_seconds
        if self._seconds > limit:
            self._start, self._parts = None, []
            raise ProtocolError(f"the audio is longer than the limit of {limit:g} s", code="audio_too_long")
        self._parts.append(samples)

    async def _transcribe(self, audio: Pcm, options: TranscribeOptions, model: str) -> None:
        started = utc_now()
        pcm = resample(audio, STT_SAMPLE_RATE)
        if pcm.duration == 0:
            raise InvalidRequest("no audio between audio-start and audio-stop", code="empty_audio")
        started_stream = chunked = False
        transcript = None
        async for item in self.service.transcriber.stream(pcm, options, model):
            if not started_stream:
                await self.write_event(TranscriptStart(language=options.language).event())
                started_stream = True
            if isinstance(item, Segment):
                if item.text:
                    # Chunks append to each other; the transcript joins segments with a space.
                    text = f" {item.text}" if chunked else item.text
                    chunked = True
                    await self.write_event(TranscriptChunk(text=text).event())
            else:
                transcript = item
        assert transcript is not None
        await self.write_event(Transcript(text=transcript.text, language=transcript.language).event())
        await self.write_event(TranscriptStop().event())
        logger.info(
            "wyoming transcription",
            extra={"audio_seconds": round(pcm.duration, 3), "language": transcript.language, "model": model},
        )
        logger.debug("wyoming transcript", extra={"text": transcript.text})
        if self.service.outbox is not None and transcript.text:
            self.service.outbox.submit(
                SpeechEvent(
                    type="transcription",
                    text=transcript.text,
                    language=transcript.language,
                    duration_seconds=round(transcript.duration, 3),
                    model=model,
                    confidence=confidence(transcript),
                    started_at=started,
                    finished_at=utc_now(),
                    source="stt_broker/wyoming",
                )
            )


@contextlib.asynccontextmanager
async def wyoming_server(settings: SttSettings, transcriber: Transcriber, metrics: HttpMetrics) -> AsyncIterator[None]:
    """Serve Wyoming for the block's duration when ``STT_WYOMING_ENABLED`` is set; otherwise nothing."""
    if not settings.wyoming_enabled:
        yield
        return
    registry = metrics.registry
    outbox = EventOutbox(settings.events_url, OutboxCounters(registry, "stt")) if settings.events_url else None
    service = SttWyoming(settings, transcriber, WyomingMetrics(registry, "stt", metrics.errors), outbox)
    if outbox is not None:
        outbox.start()
    try:
        async with serve_wyoming(
            "stt-broker",
            settings.host,
            settings.wyoming_port,
            partial(SttHandler, service),
            zeroconf_name=settings.wyoming_zeroconf or None,
        ):
            yield
    finally:
        if outbox is not None:
            await outbox.close()
