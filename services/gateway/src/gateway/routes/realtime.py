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

from gateway.deps import Gateway, GatewayDep
from gateway.live_link import open_live
from gateway.ratelimit import TooManySessions
from gateway.realtime.config import SessionConfig
from gateway.realtime.conversation_replier import VoiceLoopReplier
from gateway.realtime.protocol import RealtimeError, error_event, new_id
from gateway.realtime.session import RealtimeSession, Send
from voicestack_common.errors import VoicestackError
from voicestack_common.live import StartMessage
from voicestack_common.websocket import serve_websocket

logger = logging.getLogger(__name__)
router = APIRouter(tags=["realtime"])

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

    async def send(event: dict[str, Any]) -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
            await websocket.send_text(json.dumps(event))

    async def face(caller: str) -> None:
        await _serve(websocket, gateway, caller, send)

    await serve_websocket(
        websocket,
        face,
        describe=_refusal,
        authenticate=lambda ws: gateway.keys.socket_caller(ws, key),
        limit=gateway.realtime_sessions,
        connections=gateway.metrics.ws_connections,
        subprotocol=subprotocol,
    )


def _refusal(error: VoicestackError) -> str:
    if isinstance(error, TooManySessions):
        # OpenAI's code for it, as its clients expect
        error = RealtimeError(error.message, code="session_limit_reached", kind="rate_limit_error")
    elif not isinstance(error, RealtimeError):
        error = RealtimeError(error.message, code=error.code)
    return json.dumps({"event_id": new_id("event"), **error_event(error, None)})


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
        await asyncio.shield(session.close())
