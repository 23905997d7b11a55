"""A spoken reply: the conversation service's text stream, cut into sentences, each synthesized in turn.

Two tasks overlap: one reads the reply's text deltas and cuts them into pieces (the shared
``SentenceBuffer``: a short first piece, its first clause or words, then whole sentences), the
other synthesizes piece after piece on the TTS broker. So the first words are being spoken while
the rest is still being written. ``cancel`` stops both, closes the
reply stream (the conversation service stores the reply as interrupted) and records what the
user heard: up to the client's playback position when it reported one, else what was sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field, replace
from typing import Any

from gateway import brokers
from gateway.conversations.client import ConversationClient
from gateway.deps import Gateway
from gateway.voices import Choice
from voicestack_common.contracts.conversation import (
    MessageOut,
    TurnDelta,
    TurnDone,
    TurnEvent,
    TurnFailed,
    TurnRequest,
    TurnStarted,
    TurnToolCall,
    TurnToolResult,
)
from voicestack_common.errors import VoicestackError
from voicestack_common.events import utc_now
from voicestack_common.text import SentenceBuffer

logger = logging.getLogger(__name__)

_END = object()


@dataclass(frozen=True)
class Voice:
    """How a reply is spoken."""

    voice: str | None = None
    lang_code: str | None = None
    speed: float | None = None
    format: str = "wav"
    language: str | None = None
    """The language the user spoke (unset: ``voice`` and ``lang_code`` as they are). With ``pick_voice``
    the reply takes a voice of it (``gateway.voices``), ``voice`` being the default; else ``voice`` reads
    the text as that language (``lang_code``)."""
    pick_voice: bool = True


@dataclass(frozen=True)
class SpokenPiece:
    """One synthesized piece of the reply."""

    index: int
    text: str
    audio_base64: str
    """The audio file (or raw PCM16) as the TTS broker sent it, base64: passed on as it is."""
    duration: float
    sample_rate: int
    format: str
    voice: str | None = None
    """The voice the TTS broker spoke it with."""
    lang_code: str | None = None
    """The Kokoro language code asked for (``None``: the broker's default)."""

    def message(self) -> dict[str, Any]:
        """The ``reply.audio`` event's fields."""
        return {
            "index": self.index,
            "text": self.text,
            "audio_base64": self.audio_base64,
            "format": self.format,
            "sample_rate": self.sample_rate,
            "duration_seconds": self.duration,
            "voice": self.voice,
            "lang_code": self.lang_code,
        }


@dataclass(frozen=True)
class ReplyDone:
    """The reply is whole: the stored message (``None`` if the service sent none) and its timings."""

    done: TurnDone | None
    text: str
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ReplyFailed:
    """The reply failed (the responder, the service or the TTS broker)."""

    error: VoicestackError


ReplyEvent = TurnStarted | TurnDelta | TurnToolCall | TurnToolResult | SpokenPiece | ReplyDone | ReplyFailed
"""What a reply produces, in order: the stored user message, text deltas, tool calls and their results and
spoken pieces as they come, then ``ReplyDone`` or ``ReplyFailed``."""


def heard_text(pieces: list[SpokenPiece], position: float | None) -> str:
    """The reply's words the user heard: whole pieces before ``position`` (seconds of reply audio),
    then the share of the piece playing then; without a position, every piece sent."""
    if position is None:
        return " ".join(p.text for p in pieces)
    words: list[str] = []
    start = 0.0
    for piece in pieces:
        if position >= start + piece.duration:
            words.extend(piece.text.split())
        elif position > start:
            share = (position - start) / piece.duration if piece.duration else 0.0
            piece_words = piece.text.split()
            words.extend(piece_words[: int(len(piece_words) * share)])
            break
        else:
            break
        start += piece.duration
    return " ".join(words)


class Reply:
    """One reply in progress; iterate ``events()``; ``cancel()`` from anywhere stops it."""

    def __init__(
        self,
        gateway: Gateway,
        client: ConversationClient,
        owner: str,
        conversation_id: str,
        turn: TurnRequest,
        voice: Voice,
        session_id: str | None = None,
    ) -> None:
        self.gateway = gateway
        self.client = client
        self.owner = owner
        self.conversation_id = conversation_id
        self.turn = turn
        self.voice = voice
        self.session_id = session_id
        self.user_message: MessageOut | None = None
        self.message_id: str | None = None
        self.text = ""
        self.sent: list[SpokenPiece] = []
        self.produced: list[SpokenPiece] = []
        self.position: float | None = None
        """Seconds of this reply's audio the client has played (``playback`` messages)."""
        self.cancelled = False
        self.finished = False
        self.failed = False
        self.timings: dict[str, float] = {}
        self.tool_calls: list[TurnToolCall] = []
        self._queue: asyncio.Queue[ReplyEvent | object] = asyncio.Queue()
        # Sentences to speak, then the end: the stream's done event, or the failure.
        self._pieces: asyncio.Queue[Any] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._started = time.perf_counter()
        self._started_at = utc_now()

    def _mark(self, name: str) -> None:
        self.timings.setdefault(name, round((time.perf_counter() - self._started) * 1000, 1))

    async def events(self) -> AsyncGenerator[ReplyEvent, None]:
        """Run the reply; its events in order, ending with ``ReplyDone``, ``ReplyFailed`` or (after cancel)
        nothing."""
        self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._speak())]
        try:
            while True:
                item = await self._queue.get()
                if item is _END:
                    return
                assert isinstance(
                    item,
                    TurnStarted | TurnDelta | TurnToolCall | TurnToolResult | SpokenPiece | ReplyDone | ReplyFailed,
                )
                if isinstance(item, SpokenPiece):
                    self.sent.append(item)
                yield item
                if isinstance(item, ReplyDone | ReplyFailed):
                    return
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _read(self) -> None:
        """Text deltas in, pieces out to the speaker, deltas out to the client."""
        buffer = SentenceBuffer(first_chars=self.gateway.settings.reply_first_piece_chars)
        done: TurnDone | None = None
        try:
            async with contextlib.aclosing(self.client.turn(self.owner, self.conversation_id, self.turn)) as stream:
                async for event in stream:
                    if isinstance(event, TurnFailed):
                        error = event.error
                        await self._pieces.put(("error", VoicestackError(error.message, code=error.code)))
                        return
                    if isinstance(event, TurnDone):
                        done = event
                    else:
                        await self._on_turn_event(event, buffer)
            for piece in buffer.flush():
                await self._pieces.put(piece)
            await self._pieces.put(("done", done))
        except VoicestackError as exc:
            await self._pieces.put(("error", exc))
        except Exception:
            logger.exception("reply stream failed")
            await self._pieces.put(("error", VoicestackError("the reply failed", code="internal_error")))

    async def _on_turn_event(self, event: TurnEvent, buffer: SentenceBuffer) -> None:
        if isinstance(event, TurnStarted):
            self.user_message = event.user_message
            self.message_id = event.assistant_message_id
            await self._queue.put(event)
        elif isinstance(event, TurnDelta):
            self._mark("first_text_ms")
            self.text += event.text
            await self._queue.put(event)
            for piece in buffer.push(event.text):
                await self._pieces.put(piece)
        elif isinstance(event, TurnToolCall):
            # What the model said before the call ("Let me check.") is spoken while the tool runs.
            for piece in buffer.flush():
                await self._pieces.put(piece)
            self.tool_calls.append(event)
            await self._queue.put(event)
        elif isinstance(event, TurnToolResult):
            await self._queue.put(event)
            if not event.replayed:
                self.gateway.events.tool_called(
                    event.call,
                    session_id=self.session_id,
                    conversation_id=self.conversation_id,
                    message_id=self.message_id,
                    seconds=event.seconds,
                )

    async def _choose_voice(self) -> None:
        """A voice of the user's language, when the reply follows it (the catalog is cached: this is quick)."""
        voice, catalog = self.voice, self.gateway.voices
        if voice.language is None:
            return
        if voice.pick_voice:
            choice = await catalog.for_language(voice.language, voice.voice)
        else:
            choice = Choice(voice.voice, await catalog.code_for(voice.language, voice.voice))
        self.voice = replace(voice, voice=choice.voice, lang_code=choice.lang_code, language=None)

    async def _speak(self) -> None:
        """Pieces in, synthesized in order, audio out."""
        index = 0
        await self._choose_voice()
        while True:
            item = await self._pieces.get()
            if isinstance(item, tuple):
                kind, value = item
                if kind == "error":
                    assert isinstance(value, VoicestackError)
                    self.finished = self.failed = True
                    await self._queue.put(ReplyFailed(value))
                else:
                    self.finished = True
                    self._record(interrupted=False)
                    await self._queue.put(ReplyDone(value, self.text, dict(self.timings)))
                return
            body = {"text": item.text, "format": self.voice.format}
            for key in ("voice", "lang_code", "speed"):
                if (value := getattr(self.voice, key)) is not None:
                    body[key] = value
            try:
                result = await brokers.synthesize(self.gateway.tts, body, self.gateway.settings.voice_fallbacks)
            except VoicestackError as exc:
                if exc.code in ("unknown_voice", "unsupported_lang_code"):
                    self.gateway.voices.forget()  # the voice list it came from may be stale
                self.finished = self.failed = True
                await self._queue.put(ReplyFailed(exc))
                return
            self._mark("first_audio_ms")
            piece = SpokenPiece(
                index,
                item.text,
                result.audio_base64,
                result.audio_duration_seconds,
                result.audio_sample_rate,
                self.voice.format,
                result.voice,
                self.voice.lang_code,
            )
            index += 1
            self.produced.append(piece)
            await self._queue.put(piece)

    @property
    def audio_seconds(self) -> float:
        """Seconds of reply audio sent to the client so far."""
        return sum(p.duration for p in self.sent)

    async def cancel(self) -> str | None:
        """Stop the reply (or its playback) now and store it as heard; the heard text, or ``None``
        when there was nothing to cancel (already cancelled, or it failed)."""
        if self.cancelled or self.failed:
            return None
        self.cancelled = True
        if not self.finished:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._queue.put(_END)
        heard = heard_text(self.sent, self.position)
        if self.message_id is not None:
            try:
                await self.client.interrupt(self.owner, self.conversation_id, self.message_id, heard)
            except VoicestackError as exc:
                logger.warning("could not store the interrupted reply: %s", exc.code)
        self._record(interrupted=True, text=heard)
        return heard

    def _record(self, *, interrupted: bool, text: str | None = None) -> None:
        """The reply's MQTT event."""
        pieces = self.sent if interrupted else self.produced
        self.gateway.events.replied(
            self._started_at,
            self.session_id,
            text=self.text if text is None else text,
            seconds=round(sum(p.duration for p in pieces), 3),
            voice=self.voice.voice,
            conversation_id=self.conversation_id,
            message_id=self.message_id,
            interrupted=interrupted,
        )
