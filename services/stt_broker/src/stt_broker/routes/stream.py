"""``WS /v1/stream``: the native WebSocket face of the live session core.

It only moves frames: text frames are parsed into the shared client
messages, binary frames are audio, and the session's events go back as JSON.
Limits (frame size, idle time, session length, back-pressure) are enforced
here, before anything reaches the session.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import time

from fastapi import APIRouter, WebSocket
from pydantic import ValidationError
from starlette.websockets import WebSocketDisconnect, WebSocketState

from stt_broker.languages import normalize_language
from stt_broker.live.runtime import LiveRuntime
from stt_broker.live.session import LiveSession
from voicestack_common.errors import CLOSE_NORMAL, ClientError, PayloadTooLarge, Saturated, VoicestackError
from voicestack_common.live import (
    AudioMessage,
    ClearMessage,
    Closed,
    CommitMessage,
    StartMessage,
    StartRefused,
    StopMessage,
    client_message,
    error_event,
    event_json,
    first_frame,
)
from voicestack_common.websocket import serve_websocket

logger = logging.getLogger(__name__)
router = APIRouter(tags=["live"])


@router.websocket("/stream")
async def stream(websocket: WebSocket) -> None:
    """A live transcription session: audio in, ``partial`` and ``final`` events out."""
    runtime: LiveRuntime = websocket.state.live

    async def face(caller: str) -> None:
        await StreamFace(websocket, runtime).run()

    # Reached only from inside (the gateway's relay, trusted clients): no key, no Origin check.
    await serve_websocket(websocket, face, describe=_refusal, limit=_Capacity(runtime))


def _refusal(error: VoicestackError) -> str:
    return error_event(error.code, error.message, fatal=True).model_dump_json()


class _Capacity:
    """``STT_LIVE_MAX_SESSIONS`` as the edge's limit; a session counts itself in the runtime."""

    def __init__(self, runtime: LiveRuntime) -> None:
        self.runtime = runtime

    def take(self, caller: str) -> None:
        if self.runtime.open_sessions >= self.runtime.config.max_sessions:
            raise Saturated(f"all {self.runtime.config.max_sessions} live sessions are in use")

    def give_back(self, caller: str) -> None:
        """Nothing to give back: the session left the runtime's count when it closed."""


class StreamFace:
    """Feeds one socket's frames to a ``LiveSession`` and sends its events back."""

    def __init__(self, websocket: WebSocket, runtime: LiveRuntime) -> None:
        self.websocket = websocket
        self.runtime = runtime
        self.session: LiveSession | None = None
        self.deadline = time.monotonic() + runtime.config.max_session_seconds

    async def run(self) -> None:
        """Read until ``stop``, a fatal error or the client leaving; always release the session."""
        sender: asyncio.Task[None] | None = None
        code = CLOSE_NORMAL
        # Holds the session's model for its whole life, so the registry never unloads it under us.
        model_lease = contextlib.AsyncExitStack()
        try:
            first = await self._receive()
            if first is None:
                return
            start, pending = self._first(first)
            model = self._model(start)
            pool = await model_lease.enter_async_context(self.runtime.models.use(model))
            self.session = LiveSession(self.runtime, start, pool=pool, model=model)
            sender = asyncio.ensure_future(self._send_events(self.session))
            if pending is not None:
                await self._handle(pending)
            while not self.session.finished:
                await self.session.writable()
                message = await self._receive()
                if message is None:
                    return
                await self._handle(message)
        except VoicestackError as fatal:
            code = fatal.close_code
            if self.session is None:
                await self._send_json(_refusal(fatal))
            else:
                self.session.fail(fatal.code, fatal.message)
        finally:
            if sender is not None and self.session is not None and self.session.finished:
                with contextlib.suppress(asyncio.CancelledError):
                    await sender
            if sender is not None:
                sender.cancel()
            if self.session is not None:
                self.session.close()
            await model_lease.aclose()
            if self.websocket.client_state == WebSocketState.CONNECTED:
                with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
                    await self.websocket.close(code)

    def _model(self, start: StartMessage) -> str:
        """The catalog model the session asked for, or the default for its language."""
        try:
            language = normalize_language(start.language or self.runtime.default_language)
        except KeyError:
            raise StartRefused(f"unknown language {start.language!r}") from None
        return self.runtime.choose(start.model, language)

    async def _receive(self) -> str | bytes | None:
        """The next frame's payload; ``None`` when the client left."""
        config = self.runtime.config
        while True:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise ClientError(
                    f"live sessions last at most {config.max_session_seconds:g} s", code="session_too_long"
                )
            try:
                message = await asyncio.wait_for(self.websocket.receive(), min(config.idle_timeout, remaining))
                break
            except TimeoutError:
                # A client that stopped sending while its final is still decoding (a slow or busy
                # engine) is waiting on us, not idle: only silence with nothing in flight counts.
                if time.monotonic() < self.deadline and not (self.session is not None and self.session.decoding):
                    raise ClientError(f"nothing received for {config.idle_timeout:g} s", code="idle_timeout") from None
        if message["type"] == "websocket.disconnect":
            return None
        payload: str | bytes | None = message.get("bytes")
        if payload is None:
            payload = message.get("text") or ""
        if len(payload) > config.max_frame_bytes:
            raise PayloadTooLarge(
                f"a message is {len(payload)} bytes; the limit is {config.max_frame_bytes}", code="frame_too_large"
            )
        return payload

    def _first(self, payload: str | bytes) -> tuple[StartMessage, str | bytes | None]:
        """The session's ``start`` (explicit, or the PCM16 defaults) and the frame still to handle."""
        message, rest = first_frame(payload)
        if rest is not None:
            return message, rest
        try:
            normalize_language(message.language)
        except KeyError:
            raise StartRefused(f"unknown language {message.language!r}") from None
        return message, None

    async def _handle(self, payload: str | bytes) -> None:
        session = self.session
        assert session is not None
        if isinstance(payload, bytes):
            self._feed(payload)
            return
        try:
            message = client_message.validate_json(payload)
        except ValidationError as exc:
            session.warn("invalid_message", _problem(exc))
            return
        if isinstance(message, AudioMessage):
            try:
                data = base64.b64decode(message.audio_base64, validate=True)
            except (binascii.Error, ValueError):
                session.warn("invalid_base64", "audio_base64 is not valid base64")
                return
            self._feed(data)
        elif isinstance(message, CommitMessage):
            session.commit()
        elif isinstance(message, ClearMessage):
            session.clear()
        elif isinstance(message, StopMessage):
            await session.stop()
        else:
            session.warn("invalid_message", "'start' may only be the first message")

    def _feed(self, data: bytes) -> None:
        assert self.session is not None
        self.session.feed(data)  # an ``AudioError`` ends the session with 1007

    async def _send_events(self, session: LiveSession) -> None:
        while True:
            event = await session.next_event()
            if not await self._send_json(event_json(event)):
                return
            if isinstance(event, Closed):
                return

    async def _send_json(self, text: str) -> bool:
        try:
            await self.websocket.send_text(text)
        except (WebSocketDisconnect, RuntimeError, OSError):
            return False
        return True


def _problem(exc: ValidationError) -> str:
    problem = exc.errors()[0]
    where = ".".join(str(p) for p in problem["loc"]) or "message"
    return f"{where}: {problem['msg']}"
