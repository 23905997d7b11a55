"""``WS /api/voice/ws/transcribe``: live transcription, relayed to one STT replica per session.

Same protocol as the broker's ``/v1/stream`` (docs/live.md). Auth as the other
routes (``?api_key=`` for browsers); each caller may hold
``GATEWAY_LIVE_MAX_SESSIONS_PER_KEY`` sessions at once.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import uuid
from datetime import datetime

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from gateway.auth import Unauthorized, presented_key
from gateway.deps import Gateway, GatewayDep
from gateway.ratelimit import TooManySessions
from gateway.relay import LiveRelay, RelayError
from voicestack_common.errors import VoicestackError
from voicestack_common.jsonbody import parse_json
from voicestack_common.live import (
    CLOSE_POLICY,
    CLOSE_TOO_BIG,
    CLOSE_TRY_AGAIN,
    Final,
    StartMessage,
    StartRefused,
    error_event,
    first_frame,
)

logger = logging.getLogger(__name__)
router = APIRouter(tags=["live"])


class _Refused(Exception):
    def __init__(self, code: str, message: str, close: int) -> None:
        super().__init__(message)
        self.code, self.message, self.close = code, message, close


@router.websocket("/ws/transcribe", name="live_transcribe")
async def transcribe(websocket: WebSocket, gateway: GatewayDep) -> None:
    """Live transcription: audio in, ``partial`` and ``final`` events out (see docs/live.md)."""
    host = websocket.client.host if websocket.client else None
    await websocket.accept()
    try:
        caller = gateway.keys.caller(presented_key(websocket.headers, websocket.query_params), host)
    except Unauthorized as exc:
        await _refuse(websocket, _Refused(exc.code, exc.message, CLOSE_POLICY))
        return
    try:
        gateway.live_sessions.take(caller)
    except TooManySessions as exc:
        await _refuse(websocket, _Refused(exc.code, exc.message, CLOSE_TRY_AGAIN))
        return
    gateway.metrics.live_sessions.inc()
    try:
        await _serve(websocket, gateway)
    except _Refused as refused:
        await _refuse(websocket, refused)
    finally:
        gateway.metrics.live_sessions.dec()
        gateway.live_sessions.give_back(caller)


async def _serve(websocket: WebSocket, gateway: Gateway) -> None:
    max_frame = gateway.settings.live_max_frame_bytes
    first = await _receive(websocket, max_frame)
    if first is None:
        return
    start, pending = _start_of(first)
    session_id = start.session_id or websocket.query_params.get("session_id") or uuid.uuid4().hex
    start = start.model_copy(update={"session_id": session_id[:128]})
    lock = asyncio.Lock()

    async def send_text(text: str) -> None:
        async with lock:
            if websocket.client_state == WebSocketState.CONNECTED:
                with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
                    await websocket.send_text(text)

    def on_final(final: Final, started_at: datetime) -> None:
        gateway.events.heard(started_at, session_id, final, relay.model)

    relay = LiveRelay(gateway.stt, start, send_text, on_final, max_frame=max_frame)
    try:
        await relay.open()
    except RelayError as exc:
        raise _Refused(exc.code, exc.message, exc.close) from None
    failovers = 0
    try:
        if pending is not None:
            await _forward(relay, pending)
        closed = asyncio.ensure_future(relay.closed.wait())
        while True:
            if relay.failovers > failovers:
                gateway.metrics.live_failovers.inc(relay.failovers - failovers)
                failovers = relay.failovers
            receive = asyncio.ensure_future(_receive(websocket, max_frame))
            done, _ = await asyncio.wait({receive, closed}, return_when=asyncio.FIRST_COMPLETED)
            if receive not in done:
                receive.cancel()
                break
            try:
                payload = receive.result()
            except _Refused as refused:
                closed.cancel()
                await send_text(error_event(refused.code, refused.message, fatal=True).model_dump_json())
                await relay.close()
                with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
                    await websocket.close(refused.close)
                return
            if payload is None:
                closed.cancel()
                break
            await _forward(relay, payload)
    finally:
        await relay.close()
    if relay.closed.is_set() and websocket.client_state == WebSocketState.CONNECTED:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
            await websocket.close(relay.close_code)


async def _receive(websocket: WebSocket, max_frame: int) -> str | bytes | None:
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        return None
    payload: str | bytes | None = message.get("bytes")
    if payload is None:
        payload = message.get("text") or ""
    if len(payload) > max_frame:
        raise _Refused("frame_too_large", f"a message is {len(payload)} bytes; the limit is {max_frame}", CLOSE_TOO_BIG)
    return payload


def _start_of(payload: str | bytes) -> tuple[StartMessage, str | bytes | None]:
    """The ``start`` to open the broker session with, and the first frame if it is not one."""
    try:
        return first_frame(payload, reserved=("resume_at", "next_utterance", "checkpoints"))
    except StartRefused as exc:
        raise _Refused(exc.code, exc.message, CLOSE_POLICY) from None


async def _forward(relay: LiveRelay, payload: str | bytes) -> None:
    if isinstance(payload, bytes):
        await relay.send_audio(payload)
        return
    try:
        message = parse_json(payload, "message")
    except VoicestackError:
        message = None
    if isinstance(message, dict) and message.get("type") == "audio" and isinstance(message.get("audio_base64"), str):
        try:
            data = base64.b64decode(message["audio_base64"], validate=True)
        except (binascii.Error, ValueError):
            await relay.send_control(payload)  # the broker answers invalid_base64
            return
        await relay.send_audio(data)
        return
    await relay.send_control(payload)


async def _refuse(websocket: WebSocket, refused: _Refused) -> None:
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
        await websocket.send_text(error_event(refused.code, refused.message, fatal=True).model_dump_json())
        await websocket.close(refused.close)
