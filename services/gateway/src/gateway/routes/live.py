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

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from gateway.deps import Gateway, GatewayDep
from gateway.live_link import RelayLive, open_live
from voicestack_common.errors import PayloadTooLarge, VoicestackError
from voicestack_common.jsonbody import parse_json
from voicestack_common.live import StartMessage, error_event, event_json, first_frame
from voicestack_common.websocket import serve_websocket

logger = logging.getLogger(__name__)
router = APIRouter(tags=["live"])


@router.websocket("/ws/transcribe", name="live_transcribe")
async def transcribe(websocket: WebSocket, gateway: GatewayDep) -> None:
    """Live transcription: audio in, ``partial`` and ``final`` events out (see docs/live.md)."""

    async def face(caller: str) -> None:
        await _serve(websocket, gateway)

    await serve_websocket(
        websocket,
        face,
        describe=_refusal,
        authenticate=gateway.keys.socket_caller,
        limit=gateway.live_sessions,
        connections=gateway.metrics.live_sessions,
    )


def _refusal(error: VoicestackError) -> str:
    return error_event(error.code, error.message, fatal=True).model_dump_json()


async def _serve(websocket: WebSocket, gateway: Gateway) -> None:
    max_frame = gateway.settings.live_max_frame_bytes
    first = await _receive(websocket, max_frame)
    if first is None:
        return
    start, pending = _start_of(first)
    session_id = start.session_id or websocket.query_params.get("session_id") or uuid.uuid4().hex
    link = await open_live(gateway, start, session_id[:128])

    async def send(text: str) -> None:
        if websocket.client_state == WebSocketState.CONNECTED:
            with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
                await websocket.send_text(text)

    async def pass_events() -> None:
        async for event in link.events():
            await send(event_json(event))

    events = asyncio.ensure_future(pass_events())
    try:
        if pending is not None:
            await _forward(link, pending)
        while True:
            receive = asyncio.ensure_future(_receive(websocket, max_frame))
            done, _ = await asyncio.wait({receive, events}, return_when=asyncio.FIRST_COMPLETED)
            if receive not in done:  # the session ended
                receive.cancel()
                break
            payload = receive.result()  # a frame over the limit: the edge refuses the socket
            if payload is None:
                break
            await _forward(link, payload)
    finally:
        events.cancel()
        await asyncio.gather(events, return_exceptions=True)
        await link.close()
    if events.done() and not events.cancelled() and websocket.client_state == WebSocketState.CONNECTED:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
            await websocket.close(link.close_code)


async def _receive(websocket: WebSocket, max_frame: int) -> str | bytes | None:
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        return None
    payload: str | bytes | None = message.get("bytes")
    if payload is None:
        payload = message.get("text") or ""
    if len(payload) > max_frame:
        raise PayloadTooLarge(f"a message is {len(payload)} bytes; the limit is {max_frame}", code="frame_too_large")
    return payload


def _start_of(payload: str | bytes) -> tuple[StartMessage, str | bytes | None]:
    """The ``start`` to open the broker session with, and the first frame if it is not one."""
    return first_frame(payload, reserved=("resume_at", "next_utterance", "checkpoints"))


async def _forward(link: RelayLive, payload: str | bytes) -> None:
    if isinstance(payload, bytes):
        await link.send(payload)
        return
    try:
        message = parse_json(payload, "message")
    except VoicestackError:
        message = None
    if isinstance(message, dict) and message.get("type") == "audio" and isinstance(message.get("audio_base64"), str):
        try:
            data = base64.b64decode(message["audio_base64"], validate=True)
        except (binascii.Error, ValueError):
            await link.send(payload)  # the broker answers invalid_base64
            return
        await link.send(data)
        return
    await link.send(payload)
