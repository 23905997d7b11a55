"""Wyoming text-to-speech (Home Assistant Assist): the same synthesizer, pool and limits as HTTP.

    → describe                         ← info (every voice offered, and its language)
    → synthesize (text, voice)         ← audio-start  ← audio-chunk…  ← audio-stop
    → synthesize-start (voice)  → synthesize-chunk…  → synthesize?  → synthesize-stop
                                       ← audio-start  ← audio-chunk…  ← audio-stop   (per finished sentence)
                                       ← synthesize-stopped

Audio is streamed as each piece is synthesized: 16-bit mono PCM at the
engine's rate. Each voice speaks its own language (``bf_emma`` British
English), as over HTTP when a request leaves ``lang_code`` out; a request that
names a language instead of a voice gets the default voice when it speaks that
language, else the first voice of that language.
Voices whose language cannot be spoken here are listed as not installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from functools import partial

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.event import Event
from wyoming.info import Attribution, Describe, Info, TtsProgram, TtsVoice
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeStopped, SynthesizeVoice

from tts_broker import __version__
from tts_broker.languages import normalize_lang_code, supported_codes, voice_lang_code
from tts_broker.settings import TtsSettings
from tts_broker.synthesizer import Synthesizer
from voicestack_common.errors import InvalidRequest
from voicestack_common.metrics import HttpMetrics
from voicestack_common.text import complete_sentences
from voicestack_common.wyoming import ProtocolError, WyomingHandler, WyomingMetrics, serve_wyoming

logger = logging.getLogger(__name__)

# Samples per audio-chunk event (about 43 ms at 24 kHz), the reference servers' size.
SAMPLES_PER_CHUNK = 1024
# Streamed text without a sentence end is spoken once it is this long, so that a
# client that never ends a sentence still hears something before it stops.
MAX_PENDING_CHARS = 400
# Text one stream may carry in all (about two hours of speech): a bound on what a client
# can queue, since it may send text much faster than it is spoken.
MAX_STREAM_CHARS = 100_000
# Kokoro's language codes as the locale tags Wyoming voices carry (Home Assistant matches on them).
LOCALES = {
    "a": "en_US",
    "b": "en_GB",
    "e": "es_ES",
    "f": "fr_FR",
    "h": "hi_IN",
    "i": "it_IT",
    "p": "pt_BR",
    "j": "ja_JP",
    "z": "zh_CN",
}
_KOKORO = Attribution(name="hexgrad", url="https://huggingface.co/hexgrad/Kokoro-82M")


async def build_info(synthesizer: Synthesizer) -> Info:
    """What ``describe`` answers: every voice offered now, each in its own language."""
    catalog = await synthesizer.catalog()
    voices = [
        TtsVoice(
            name=voice.id,
            description=f"Kokoro {voice.id} ({voice.language_name}"
            + (f", {voice.gender})" if voice.gender else ")")
            + ("" if voice.available else f": {voice.reason}"),
            attribution=_KOKORO,
            installed=voice.available,
            version=None,
            languages=[LOCALES[voice.lang_code]],
        )
        for voice in synthesizer.details(catalog)
    ]
    program = TtsProgram(
        name="voicestack-tts",
        description=f"voicestack text-to-speech ({synthesizer.backend} {synthesizer.model})",
        attribution=_KOKORO,
        installed=True,
        version=__version__,
        voices=voices,
        supports_synthesize_streaming=True,
    )
    return Info(tts=[program])


def _lang_code(voice: SynthesizeVoice | None) -> str | None:
    """A language named instead of a voice, as Kokoro's code; ``None`` keeps the default."""
    if voice is None or voice.name or not voice.language:
        return None
    tag = voice.language.replace("_", "-")
    for candidate in (tag, tag.split("-")[0]):
        with contextlib.suppress(KeyError):
            return normalize_lang_code(candidate)
    raise InvalidRequest(
        f"unknown language {voice.language!r}; use one of {supported_codes()}", code="unsupported_lang_code"
    )


class TtsHandler(WyomingHandler):
    """One Wyoming connection to the TTS broker."""

    def __init__(
        self,
        synthesizer: Synthesizer,
        metrics: WyomingMetrics,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        super().__init__(reader, writer, metrics)
        self.synthesizer = synthesizer
        self._pieces: asyncio.Queue[str | None] | None = None
        self._pending = ""
        self._streamed = 0

    async def on_event(self, event: Event) -> bool:
        if Describe.is_type(event.type):
            await self.write_event((await build_info(self.synthesizer)).event())
        elif Synthesize.is_type(event.type):
            if self._pieces is not None:
                return True  # sent inside a stream for older servers only
            await self.finish_work()
            request = Synthesize.from_event(event)
            voice, lang = await self._voice(request.voice)
            self.start_work("synthesize", self._speak(request.text, voice, lang))
        elif SynthesizeStart.is_type(event.type):
            if self._pieces is not None:  # a new stream ends the one left open
                self._end_stream(self._pieces)
            await self.finish_work()
            voice, lang = await self._voice(SynthesizeStart.from_event(event).voice)
            self._pieces, self._pending, self._streamed = asyncio.Queue(), "", 0
            self.start_work("synthesize-stream", self._speak_stream(self._pieces, voice, lang))
        elif SynthesizeChunk.is_type(event.type):
            pieces = self._stream_queue(event.type)
            text = SynthesizeChunk.from_event(event).text
            self._streamed += len(text)
            if self._streamed > MAX_STREAM_CHARS:
                raise ProtocolError(f"a stream may carry {MAX_STREAM_CHARS} characters of text", code="text_too_long")
            self._pending += text
            finished, self._pending = complete_sentences(self._pending)
            if not finished and len(self._pending) >= MAX_PENDING_CHARS:
                finished, self._pending = self._pending, ""
            if finished.strip():
                pieces.put_nowait(finished)
        elif SynthesizeStop.is_type(event.type):
            self._end_stream(self._stream_queue(event.type))
        return True  # other events are dropped, as the protocol asks

    def _end_stream(self, pieces: asyncio.Queue[str | None]) -> None:
        """The rest of the text, then the end: the stream's task answers synthesize-stopped."""
        if self._pending.strip():
            pieces.put_nowait(self._pending)
        pieces.put_nowait(None)
        self._pieces, self._pending = None, ""

    def _stream_queue(self, event_type: str) -> asyncio.Queue[str | None]:
        if self._pieces is None:
            raise ProtocolError(f"{event_type} without synthesize-start", code="synthesis_not_started")
        return self._pieces

    async def _voice(self, voice: SynthesizeVoice | None) -> tuple[str | None, str | None]:
        """The voice spec and language code a request asks for, checked before any audio."""
        name = voice.name if voice is not None else None
        if voice is not None and voice.speaker:
            logger.debug("speaker %r ignored: Kokoro voices have one speaker", voice.speaker)
        catalog = await self.synthesizer.catalog()
        lang = _lang_code(voice)
        if not name and lang is not None and voice_lang_code(catalog.default.names[0]) != lang:
            # A language alone: the default voice when it speaks it, else that language's first voice.
            name = next((v for v in catalog.offered if voice_lang_code(v) == lang), None)
        self.synthesizer.language_for(lang, catalog.resolve(name))  # refused here, before any audio
        return name, lang

    async def _speak_stream(self, pieces: asyncio.Queue[str | None], voice: str | None, lang: str | None) -> None:
        while (text := await pieces.get()) is not None:
            await self._speak(text, voice, lang)
        await self.write_event(SynthesizeStopped().event())

    async def _speak(self, text: str, voice: str | None, lang: str | None) -> None:
        """audio-start, the audio as it is synthesized, audio-stop."""
        job = await self.synthesizer.job(text, voice, lang, None, "pcm", ("pcm",))
        rate, step = self.synthesizer.sample_rate, SAMPLES_PER_CHUNK * 2
        started = False
        chunks = self.synthesizer.stream(job)
        try:
            async for chunk in chunks:
                if not started:  # after the first audio: a refusal (saturated) comes before audio-start
                    await self.write_event(AudioStart(rate=rate, width=2, channels=1).event())
                    started = True
                for offset in range(0, len(chunk.data), step):
                    audio = chunk.data[offset : offset + step]
                    await self.write_event(AudioChunk(rate=rate, width=2, channels=1, audio=audio).event())
        finally:
            await chunks.aclose()
        await self.write_event(AudioStop().event())
        logger.info("wyoming synthesis", extra={"characters": len(text), "voice": job.request.voice.spec})


@contextlib.asynccontextmanager
async def wyoming_server(settings: TtsSettings, synthesizer: Synthesizer, metrics: HttpMetrics) -> AsyncIterator[None]:
    """Serve Wyoming for the block's duration when ``TTS_WYOMING_ENABLED`` is set; otherwise nothing."""
    if not settings.wyoming_enabled:
        yield
        return
    wyoming_metrics = WyomingMetrics(metrics.registry, "tts", metrics.errors)
    async with serve_wyoming(
        "tts-broker",
        settings.host,
        settings.wyoming_port,
        partial(TtsHandler, synthesizer, wyoming_metrics),
        zeroconf_name=settings.wyoming_zeroconf or None,
    ):
        yield
