"""``WS /v1/realtime``: the OpenAI Realtime API (beta, ``OpenAI-Beta: realtime=v1``) as a face over the
live session core and the voice loop; see docs/realtime.md."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from gateway.auth import Unauthorized, presented_key
from gateway.deps import Gateway, GatewayDep
from gateway.live_link import open_live
from gateway.ratelimit import TooManySessions
from gateway.realtime.config import SessionConfig
from gateway.realtime.protocol import RealtimeError, error_event, new_id
from gateway.realtime.session import RealtimeSession, Send
from gateway.realtime.conversation_replier import VoiceLoopReplier
from voicestack_common.live import StartMessage

logger = logging.getLogger(__name__)
router = APIRouter(tags=["realtime"])

POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013
# Browsers cannot set headers: OpenAI's clients send the key as a subprotocol instead.
KEY_SUBPROTOCOL = "openai-insecure-api-key."


def _subprotocol_key(websocket: WebSocket) -> tuple[str | None, str | None]:
    offered = [p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
    key = next((p[len(KEY_SUBPROTOCOL) :] for p in offered if p.startswith(KEY_SUBPROTOCOL)), None)
    return key, ("realtime" if "realtime" in offered else None)


@router.websocket("/realtime", name="realtime")
async def realtime(websocket: WebSocket, gateway: GatewayDep) -> None:
    """A Realtime session: ``?intent=transcription`` for transcription only."""
    key, subprotocol = _subprotocol_key(websocket)
    await websocket.accept(subprotocol=subprotocol)
    host = websocket.client.host if websocket.client else None

    async def send(event: dict[str, Any]) -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
            await websocket.send_text(json.dumps(event))

    try:
        caller = gateway.keys.caller(key or presented_key(websocket.headers, websocket.query_params), host)
    except Unauthorized as exc:
        error = RealtimeError(exc.message, code=exc.code)
        await send({"event_id": new_id("event"), **error_event(error, None)})
        await websocket.close(code=POLICY_VIOLATION, reason=exc.code)
        return
    try:
        gateway.realtime_sessions.take(caller)
    except TooManySessions as exc:
        # OpenAI's code for it, as its clients expect
        error = RealtimeError(exc.message, code="session_limit_reached", kind="rate_limit_error")
        await send({"event_id": new_id("event"), **error_event(error, None)})
        await websocket.close(code=TRY_AGAIN_LATER, reason="session_limit_reached")
        return
    try:
        await _serve(websocket, gateway, caller, send)
    finally:
        gateway.realtime_sessions.give_back(caller)


async def _serve(websocket: WebSocket, gateway: Gateway, caller: str, send: Send) -> None:
    transcription = websocket.query_params.get("intent") == "transcription"
    config = SessionConfig.create(
        "transcription_session" if transcription else "session", gateway.settings.realtime_voice
    )

    async def live(start: StartMessage) -> Any:
        return await open_live(gateway, start, config.id)

    conversations = getattr(websocket.state, "conversations", None)
    replier = (
        VoiceLoopReplier(gateway, conversations.client, caller, config.conversation_id)
        if not transcription and conversations is not None and conversations.client.upstream is not None
        else None
    )
    session = RealtimeSession(send, gateway, caller, config, live, replier)
    gateway.metrics.ws_connections.inc()
    try:
        await session.start()
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            if message.get("text") is None:
                await session.send(error_event(RealtimeError("Send JSON text messages, not binary ones."), None))
                continue
            await session.handle(message["text"])
    finally:
        gateway.metrics.ws_connections.dec()
        await asyncio.shield(session.close())
