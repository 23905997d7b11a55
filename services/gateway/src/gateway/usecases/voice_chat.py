"""The voice loop on ``WS /api/voice/ws/chat``: speak, hear the answer, interrupt it.

After ``start_conversation`` the socket carries audio (binary PCM16 frames, or ``audio``
messages with base64) and the loop answers each finished utterance::

    client                                   gateway
    start_conversation {...}        →        conversation.started {conversation_id, ...}
    binary PCM16 frames ...         →        speech_started, partial {text} ..., speech_stopped, final {text}
                                             reply.started, reply.text.delta {text} ...
                                             tool.call {call_id, name, arguments, status}, tool.result {...,
                                             result, error_code} (an error event too when it failed)
                                             reply.audio {index, text, audio_base64, ...} per piece
                                             reply.done {message_id, text, timings}
                                             (compat seed002: server_response {message, audio})
    playback {position}             →        (what the user has heard so far, in seconds)
    speech while a reply plays      →        reply.cancelled {reason: "barge_in", heard_text}
    cancel                          →        reply.cancelled {reason: "cancel", heard_text}

``commit`` ends an utterance at once (push-to-talk); ``text`` sends a typed message instead of
speech. Recognition runs in the live session core (the STT broker's ``/v1/stream`` through the
gateway's relay, as the Realtime face uses it): its events reach the client unchanged (recognizer.py).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway import brokers
from gateway.conversations.client import owner_of
from gateway.conversations.recognizer import (
    DEFAULT_SILENCE_MS,
    SAMPLE_RATE,
    Heard,
    HeardFinal,
    LiveRecognizer,
    live_start,
)
from gateway.conversations.state import Conversations
from gateway.deps import Gateway
from gateway.usecases.spoken_reply import Reply, ReplyDone, ReplyFailed, SpokenPiece, Voice
from voicestack_common.contracts.conversation import (
    ConversationCreate,
    ResponderChoice,
    ToolCallOut,
    TurnDelta,
    TurnRequest,
    TurnStarted,
    TurnToolCall,
    TurnToolResult,
)
from voicestack_common.errors import VoicestackError
from voicestack_common.live import EndOfTurn, SpeechStarted, SpeechStopped

logger = logging.getLogger(__name__)


def tool_view(call: ToolCallOut) -> dict[str, Any]:
    """A tool call as the ``tool.call`` / ``tool.result`` events show it."""
    return call.model_dump(
        mode="json", include={"call_id", "name", "arguments", "kind", "status", "result", "error_code"}
    )


VOICE_KINDS = frozenset({"start_conversation", "audio", "commit", "playback", "cancel", "text", "end_conversation"})
Send = Callable[[dict[str, Any] | BaseModel], Awaitable[None]]
Error = Callable[..., Awaitable[None]]


class StartConversation(BaseModel):
    """``start_conversation``: which conversation, who, and how replies are spoken."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["start_conversation"] = "start_conversation"
    id: str | int | None = None
    conversation_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._:\-]{1,64}$")
    """Carry on with this conversation (404 unless it exists or ``create`` is set); unset starts a new one."""
    create: bool = False
    """Create ``conversation_id`` when it does not exist yet."""
    user_id: str | None = Field(default=None, max_length=128)
    voice: str | None = Field(default=None, max_length=256)
    lang_code: str | None = Field(default=None, max_length=16)
    speed: float | None = Field(default=None, ge=0.25, le=4.0)
    language: str | None = Field(default=None, max_length=16)
    """Language of the user's speech (unset: detected by a multilingual model, else the broker's default).
    Unless ``voice`` or ``lang_code`` is set, each reply is spoken by a voice of the language the user spoke."""
    model: str | None = Field(default=None, max_length=128)
    """The speech-to-text model (one of ``GET /v1/models``; unset: the STT broker's default)."""
    format: Literal["wav", "pcm", "mp3", "opus", "flac"] = "wav"
    """Encoding of ``reply.audio``: each piece is a whole file in it (PCM: raw 16-bit samples)."""
    sample_rate: int = Field(default=SAMPLE_RATE, ge=8_000, le=48_000)
    """Sample rate of the PCM16 mono audio the client sends."""
    silence_ms: int = Field(default=DEFAULT_SILENCE_MS, ge=200, le=5_000)
    """Silence that ends an utterance (``end_of_turn=silence``, or where the STT broker has no turn model)."""
    end_of_turn: EndOfTurn = "model"
    """``model``: at each short pause the STT broker's end-of-turn model hears whether the user has
    finished, and the reply starts at once when they have ("I'd like to order... a pizza" is one turn);
    ``silence``: ``silence_ms`` of silence ends the turn."""
    partials: bool = True
    """Send ``partial`` transcripts while the user speaks."""
    responder: ResponderChoice | None = None
    compat: Literal["seed002"] | None = None
    """``seed002``: also send each reply as ``{"type": "server_response", "message", "audio"}`` (MP3)."""


class VoiceLoop:
    """One socket's conversation: recognition in, replies out, barge-in."""

    def __init__(
        self, send: Send, error: Error, gateway: Gateway, conversations: Conversations, caller: str, session_id: str
    ) -> None:
        self.send = send
        self.error = error
        self.gateway = gateway
        self.conversations = conversations
        self.caller = caller
        self.owner = owner_of(caller)
        self.session_id = session_id
        self.start: StartConversation | None = None
        self.conversation_id: str | None = None
        self.recognizer: LiveRecognizer | None = None
        self.hearing: asyncio.Task[None] | None = None
        self.reply: Reply | None = None
        self.reply_task: asyncio.Task[None] | None = None
        self.first_audio_at = 0.0
        self.tasks: set[asyncio.Task[None]] = set()
        self.speech_end = 0.0
        self.committed = False

    async def handle(self, kind: str, data: dict[str, Any]) -> None:
        """One JSON message of the loop."""
        request_id = data.get("id")
        if kind == "start_conversation":
            await self._start(data)
            return
        if self.start is None:
            await self.error("no_conversation", "send start_conversation first", request_id)
            return
        if kind == "audio":
            value = data.get("audio_base64")
            try:
                audio = base64.b64decode(value if isinstance(value, str) else "", validate=True)
            except (binascii.Error, ValueError):
                await self.error("invalid_base64", "audio_base64 is not valid base64", request_id)
                return
            await self.audio(audio)
        elif kind == "commit":
            assert self.recognizer is not None
            if self.recognizer.open_utterance is not None:  # else the core heard the end already
                self.speech_end, self.committed = time.perf_counter(), True
            await self.recognizer.commit()
        elif kind == "playback":
            position = data.get("position")
            if isinstance(position, bool) or not isinstance(position, int | float) or position < 0:
                await self.error("invalid_request", "playback needs a position in seconds (>= 0)", request_id)
                return
            if self.reply is not None:
                self.reply.position = float(position)
        elif kind == "cancel":
            await self._cancel("cancel")
        elif kind == "text":
            text = data.get("text")
            if not isinstance(text, str) or not text.strip():
                await self.error("invalid_request", "text needs a non-empty 'text'", request_id)
                return
            await self._cancel("barge_in")
            self.speech_end = time.perf_counter()
            self._respond(text.strip(), None)
        elif kind == "end_conversation":
            await self._cancel("cancel")
            await self.send({"type": "conversation.ended", "conversation_id": self.conversation_id})
            await self.close()
            self.start = None

    async def audio(self, data: bytes) -> None:
        """Audio from the client: PCM16 mono at the announced rate."""
        if self.start is None or self.recognizer is None:
            await self.error("no_conversation", "send start_conversation before audio")
            return
        if len(data) % 2:
            await self.error("unsupported_audio", "audio frames are 16-bit PCM: an even number of bytes")
            return
        try:
            await self.recognizer.feed(data)
        except VoicestackError as exc:
            await self.error(exc.code, exc.message)

    async def _start(self, data: dict[str, Any]) -> None:
        request_id = data.get("id")
        try:
            start = StartConversation.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            await self.error("invalid_request", f"{'.'.join(map(str, first['loc']))}: {first['msg']}", request_id)
            return
        client = self.conversations.client
        try:
            if start.responder is not None:
                await client.check(start.responder)
            if start.conversation_id is None:
                created = await client.create(self.owner, ConversationCreate(user_id=start.user_id))
                conversation_id, messages = created.id, 0
            else:
                conversation_id = start.conversation_id
                try:
                    messages = len((await client.get(self.owner, conversation_id)).messages)
                except VoicestackError as exc:
                    if exc.code != "conversation_not_found" or not start.create:
                        raise
                    await client.create(self.owner, ConversationCreate(id=conversation_id, user_id=start.user_id))
                    messages = 0
        except VoicestackError as exc:
            await self.error(exc.code, exc.message, request_id, exc.details)
            return
        await self.close()
        self.start, self.conversation_id = start, conversation_id
        try:
            core = live_start(
                sample_rate=start.sample_rate,
                language=start.language,
                silence_ms=start.silence_ms,
                end_of_turn=start.end_of_turn,
                partials=start.partials,
                model=start.model,
            )
        except ValueError as exc:
            await self.error("invalid_request", str(exc), request_id)
            return
        self.recognizer = LiveRecognizer(self.gateway, core, self.session_id, self.caller)
        self.hearing = asyncio.create_task(self._hear(self.recognizer))
        message = {"type": "conversation.started", "conversation_id": conversation_id, "messages": messages}
        await self.send({**message, "id": request_id} if request_id is not None else message)

    async def _hear(self, recognizer: LiveRecognizer) -> None:
        """The recognizer's events, each passed to the client, a final answered."""
        async for event in recognizer.events():
            try:
                await self._on_recognition(event)
            except Exception:
                logger.exception("voice loop: a recognition event failed")

    async def _on_recognition(self, event: Heard) -> None:
        if isinstance(event, SpeechStarted) and self._replying():
            await self._cancel("barge_in")
        if isinstance(event, SpeechStopped):
            if not self.committed:  # the core's VAD heard the end (a commit already marked it)
                self.speech_end = time.perf_counter()
            self.committed = False
        await self.send(event)
        if isinstance(event, HeardFinal) and event.text:
            transcript = {
                "language": event.language,
                "confidence": event.confidence,
                "duration_seconds": event.duration_seconds,
                "model": event.model,
            }
            self._respond(event.text, transcript, transcribe_ms=event.transcribe_ms)

    def _replying(self) -> bool:
        """Whether a reply is being made or (by the clock, or the client's report) still played."""
        reply = self.reply
        if reply is None or reply.cancelled or reply.failed:
            return False
        if not reply.finished:
            return True
        total = reply.audio_seconds
        if reply.position is not None:
            return reply.position < total - 0.05
        return time.perf_counter() < self.first_audio_at + total

    async def _cancel(self, reason: str) -> None:
        reply = self.reply
        if reply is None or not self._replying():
            return
        heard = await reply.cancel()
        if self.reply_task is not None:
            await asyncio.gather(self.reply_task, return_exceptions=True)
        if heard is not None:
            await self.send(
                {"type": "reply.cancelled", "reason": reason, "message_id": reply.message_id, "heard_text": heard}
            )

    def _respond(self, text: str, transcript: dict[str, Any] | None, transcribe_ms: float | None = None) -> None:
        start = self.start
        assert start is not None
        assert self.conversation_id is not None
        body = TurnRequest(
            text=text,
            user_id=start.user_id,
            language=start.language,
            transcript=transcript,
            responder=start.responder or ResponderChoice(),
        )
        # A fixed lang_code holds; a fixed voice reads the reply in the language spoken; else the reply
        # takes a voice of that language.
        language = None if start.lang_code is not None else (transcript or {}).get("language") or start.language
        voice = Voice(
            start.voice or self.gateway.settings.chat_voice,
            start.lang_code,
            start.speed,
            start.format,
            language=language if isinstance(language, str) else None,
            pick_voice=start.voice is None,
        )
        reply = Reply(
            self.gateway, self.conversations.client, self.owner, self.conversation_id, body, voice, self.session_id
        )
        self.reply = reply
        self.reply_task = asyncio.create_task(self._run(reply, transcribe_ms))

    async def _run(self, reply: Reply, transcribe_ms: float | None) -> None:
        first_audio = True
        async for event in reply.events():
            if isinstance(event, TurnStarted):
                await self.send(
                    {
                        "type": "reply.started",
                        "message_id": event.assistant_message_id,
                        "user_message": event.user_message.model_dump(mode="json") if event.user_message else None,
                    }
                )
            elif isinstance(event, TurnDelta):
                await self.send({"type": "reply.text.delta", "message_id": reply.message_id, "text": event.text})
            elif isinstance(event, TurnToolCall):
                await self.send({"type": "tool.call", "message_id": reply.message_id, **tool_view(event.call)})
            elif isinstance(event, TurnToolResult):
                view = tool_view(event.call)
                await self.send(
                    {"type": "tool.result", "message_id": reply.message_id, "replayed": event.replayed, **view}
                )
                if event.call.status not in ("ok", "cancelled"):  # refused, timed out, failed: said plainly too
                    details = {"call_id": event.call.call_id, "tool": event.call.name, "status": event.call.status}
                    await self.error(event.call.error_code or "tool_failed", event.call.result or "", None, details)
            elif isinstance(event, SpokenPiece):
                if first_audio:
                    self.first_audio_at = time.perf_counter()
                    first_audio = False
                await self.send({"type": "reply.audio", "message_id": reply.message_id, **event.message()})
            elif isinstance(event, ReplyDone):
                timings = dict(event.timings)
                if transcribe_ms is not None:
                    timings["transcribe_ms"] = transcribe_ms
                if self.first_audio_at and self.speech_end:
                    timings["speech_end_to_first_audio_ms"] = round((self.first_audio_at - self.speech_end) * 1000, 1)
                done = event.done
                await self.send(
                    {
                        "type": "reply.done",
                        "message_id": reply.message_id,
                        "text": reply.text,
                        "truncated": done is not None and done.truncated,
                        "audio_seconds": round(reply.audio_seconds, 3),
                        "timings": timings,
                        "status": done.message.status if done is not None else None,
                        # the voice chosen, else the broker's default that spoke it
                        "voice": reply.voice.voice or next((p.voice for p in reply.sent), None),
                        "lang_code": reply.voice.lang_code,
                    }
                )
                if self.start is not None and self.start.compat == "seed002":
                    await self._server_response(reply.text, reply.voice)
            elif isinstance(event, ReplyFailed):
                await self.error(event.error.code, event.error.message, None, event.error.details)

    async def _server_response(self, text: str, spoken: Voice) -> None:
        """Seed 002's answer: the reply's text and its audio as base64 MP3, in the reply's voice."""
        body: dict[str, Any] = {"text": text or "…", "format": "mp3"}
        for key in ("voice", "lang_code", "speed"):
            if (value := getattr(spoken, key)) is not None:
                body[key] = value
        try:
            result = await brokers.synthesize(self.gateway.tts, body, self.gateway.settings.voice_fallbacks)
        except VoicestackError as exc:
            await self.error(exc.code, exc.message)
            return
        await self.send({"type": "server_response", "message": text, "audio": result.audio_base64})

    async def close(self) -> None:
        """Stop the reply and the recognizer (the socket closed, or a new conversation started)."""
        if self.reply is not None and not self.reply.finished:
            await self.reply.cancel()
        if self.reply_task is not None:
            self.reply_task.cancel()
            await asyncio.gather(self.reply_task, return_exceptions=True)
        if self.recognizer is not None:
            await self.recognizer.aclose()
        if self.hearing is not None:
            self.hearing.cancel()
            await asyncio.gather(self.hearing, return_exceptions=True)
        self.reply = self.reply_task = self.recognizer = self.hearing = None
