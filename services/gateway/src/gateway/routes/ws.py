"""``WS /api/voice/ws/chat``: transcribe, synthesize and ping over one socket, several requests at once.

Every request may carry an ``id``; its answer (``transcription``, ``audio``, ``pong`` or ``error``)
echoes it, since answers arrive in the order they finish. A bad message is answered with an
``error`` and the socket stays open.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from typing import Any

from fastapi import APIRouter, WebSocket
from pydantic import BaseModel
from starlette.websockets import WebSocketDisconnect

from gateway import brokers
from gateway.conversations.state import Conversations
from gateway.deps import Gateway, GatewayDep
from gateway.schemas import WsSynthesize, WsTranscribe
from gateway.usecases import synthesis, transcription
from gateway.usecases.voice_chat import VOICE_KINDS, VoiceLoop
from voicestack_common.errors import VoicestackError, error_body, validate_as
from voicestack_common.jsonbody import parse_json
from voicestack_common.logging import request_id_var
from voicestack_common.websocket import serve_websocket

logger = logging.getLogger(__name__)
router = APIRouter(tags=["voice"])

_KINDS = ("transcribe", "synthesize", "ping")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


class ChatSession:
    """One connected client: reads messages, runs requests as tasks, sends answers one at a time."""

    def __init__(self, websocket: WebSocket, gateway: Gateway, caller: str, session_id: str) -> None:
        self.websocket = websocket
        conversations: Conversations = websocket.state.conversations
        # The voice loop (start_conversation, streamed audio, replies) shares the socket.
        self.voice = VoiceLoop(self.send, self.error, gateway, conversations, caller, session_id)
        self.gateway = gateway
        self.caller = caller
        self.session_id = session_id
        self.request_id = request_id_var.get() or uuid.uuid4().hex
        self.tasks: set[asyncio.Task[None]] = set()
        self.sent = asyncio.Lock()
        self.closed = False
        self.count = 0

    async def send(self, message: dict[str, Any] | BaseModel) -> None:
        """Send one JSON message, a model's unset fields left out (a client that left is no error)."""
        text = message.model_dump_json(exclude_none=True) if isinstance(message, BaseModel) else json.dumps(message)
        async with self.sent:
            if self.closed:
                return
            try:
                await self.websocket.send_text(text)
            except (WebSocketDisconnect, RuntimeError, OSError):
                self.closed = True

    async def error(self, code: str, message: str, request_id: Any = None, details: Any = None) -> None:
        """An ``error`` answer in the shared error shape."""
        await self.send(_with_id({"type": "error", **error_body(code, message, details)}, request_id))

    async def run(self) -> None:
        """Read until the client leaves; then cancel what is still running."""
        try:
            while True:
                message = await self.websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                if message.get("text") is None:
                    if message.get("bytes") is not None and self.voice.start is not None:
                        await self.voice.audio(message["bytes"])
                    else:
                        await self.error(
                            "invalid_message", "send JSON text messages (binary audio only after start_conversation)"
                        )
                    continue
                await self.handle(message["text"])
        finally:
            await self.voice.close()
            self.closed = True
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)

    async def handle(self, text: str) -> None:
        """Answer a ping at once; check a request and start it as a task."""
        try:
            data = parse_json(text, "message")
        except VoicestackError as exc:
            await self.error(exc.code, exc.message)
            return
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            await self.error("invalid_message", "a message is a JSON object with a 'type'")
            return
        kind, request_id = data["type"], data.get("id")
        if not isinstance(request_id, str | int | float | bool | None):
            # Echoed in every answer: a scalar only, so an answer can never be larger than the request.
            await self.error("invalid_message", "'id' must be a string or a number")
            return
        self.gateway.metrics.ws_messages.labels(kind if kind in _KINDS else "unknown").inc()
        if kind == "ping":
            await self.send(_with_id({"type": "pong"}, request_id))
            return
        if kind in VOICE_KINDS:
            await self.voice.handle(kind, data)
            return
        if kind not in ("transcribe", "synthesize"):
            await self.error(
                "unknown_message_type",
                f"unknown message type {kind!r}; use one of {', '.join((*_KINDS, *sorted(VOICE_KINDS)))}",
                request_id,
            )
            return
        if len(self.tasks) >= self.gateway.settings.ws_max_in_flight:
            await self.error(
                "too_many_in_flight",
                f"at most {self.gateway.settings.ws_max_in_flight} "
                "requests may run at once on one socket; wait for an answer",
                request_id,
            )
            return
        try:
            request: WsTranscribe | WsSynthesize = (
                validate_as(WsTranscribe, data, what="message")
                if kind == "transcribe"
                else validate_as(WsSynthesize, data, what="message")
            )
        except VoicestackError as exc:
            await self.error(exc.code, exc.message, request_id, exc.details)
            return
        task = asyncio.create_task(self.serve(request, request_id))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def serve(self, request: WsTranscribe | WsSynthesize, request_id: Any) -> None:
        """Run one request and send its answer (or its error)."""
        self.count += 1
        suffix = (
            str(request_id)
            if isinstance(request_id, str | int) and _SAFE_ID.match(str(request_id))
            else str(self.count)
        )
        request_id_var.set(f"{self.request_id}.{suffix}"[:128])  # this task's own context
        try:
            if isinstance(request, WsTranscribe):
                answer = await self.transcribe(request)
            else:
                answer = await self.synthesize(request)
        except VoicestackError as exc:
            await self.error(exc.code, exc.message, request_id, exc.details)
            return
        except Exception:
            logger.exception("WebSocket request failed")
            await self.error("internal_error", "internal server error", request_id)
            return
        await self.send(_with_id(answer, request_id))

    async def transcribe(self, request: WsTranscribe) -> dict[str, Any]:
        """A ``transcription`` answer."""
        gateway = self.gateway
        audio = brokers.decode_base64_audio(request.audio_base64, gateway.settings.max_upload_bytes)
        gateway.charge("transcribe", self.caller)
        result = await transcription.transcribe_bytes(
            gateway, audio, language=request.language, session=self.session_id
        )
        return {"type": "transcription", **result.model_dump()}

    async def synthesize(self, request: WsSynthesize) -> dict[str, Any]:
        """An ``audio`` answer."""
        self.gateway.charge("synthesize", self.caller)
        result = await synthesis.synthesize(self.gateway, request, self.session_id)
        return {
            "type": "audio",
            "audio_base64": result.audio_base64,
            "duration_seconds": result.audio_duration_seconds,
            "sample_rate": result.audio_sample_rate,
            "voice": result.voice,
            "speed": result.speed,
        }


def _with_id(message: dict[str, Any], request_id: Any) -> dict[str, Any]:
    return {**message, "id": request_id} if request_id is not None else message


@router.websocket("/ws/chat", name="voice_chat")
async def chat(websocket: WebSocket, gateway: GatewayDep) -> None:
    """Voice chat: ``transcribe``, ``synthesize`` and ``ping`` messages (see docs/gateway.md)."""
    session_id = (
        websocket.query_params.get("session_id") or websocket.headers.get("x-session-id") or uuid.uuid4().hex
    )[:128]

    async def face(caller: str) -> None:
        await ChatSession(websocket, gateway, caller, session_id).run()

    await serve_websocket(
        websocket,
        face,
        describe=_refusal,
        authenticate=gateway.keys.socket_caller,
        connections=gateway.metrics.ws_connections,
    )


def _refusal(error: VoicestackError) -> str:
    return json.dumps({"type": "error", **error_body(error.code, error.message)})
