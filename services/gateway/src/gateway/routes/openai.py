"""``/v1/audio/*``: OpenAI's transcription and speech endpoints, passed through to the brokers."""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import IO, Any

import httpx
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse

from gateway import brokers
from gateway.deps import (
    Gateway,
    GatewayDep,
    SessionDep,
    limit_synthesize,
    limit_transcribe,
    require_multipart,
)
from gateway.schemas import OpenAISpeechRequest, errors, json_errors
from gateway.streaming import AudioTap, SseTap, relay
from voicestack_common.events import utc_now
from voicestack_common.jsonbody import JsonBodyRoute

logger = logging.getLogger(__name__)
router = APIRouter(tags=["openai"], route_class=JsonBodyRoute)

# Uploads up to this size stay in memory on their way through; larger ones go to a temp file.
SPOOL_MEMORY_BYTES = 1024 * 1024
_CHUNK = 64 * 1024

_TRANSCRIPTION_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "model": {"type": "string", "example": "whisper-1"},
                        "language": {"type": "string", "example": "en"},
                        "prompt": {"type": "string"},
                        "response_format": {"type": "string", "enum": ["json", "text", "srt", "vtt", "verbose_json"]},
                        "temperature": {"type": "number", "minimum": 0, "maximum": 1},
                        "timestamp_granularities[]": {
                            "type": "array",
                            "items": {"type": "string", "enum": ["word", "segment"]},
                        },
                        "stream": {"type": "boolean", "description": "Server-sent transcript.text.delta/done events"},
                    },
                }
            }
        },
    }
}


async def _chunks(spool: IO[bytes]) -> AsyncIterator[bytes]:
    spool.seek(0)
    while chunk := spool.read(_CHUNK):
        yield chunk


@router.post(
    "/audio/transcriptions",
    summary="OpenAI-compatible transcription (passed to the STT broker)",
    dependencies=[Depends(require_multipart), Depends(limit_transcribe)],
    openapi_extra=_TRANSCRIPTION_BODY,
    responses={
        200: {
            "description": "As OpenAI: JSON, text, SRT, WebVTT, or server-sent events with stream=true",
            "content": {"application/json": {}, "text/plain": {}, "text/event-stream": {}},
        },
        **errors(400, 401, 413, 415, 422, 429, 502, 503, 504),
    },
)
async def transcriptions(request: Request, gateway: GatewayDep, session: SessionDep) -> Response:
    """The multipart body goes to the broker as sent (so every OpenAI field works); the answer comes
    back as the broker gives it, streamed when it streams."""
    started = utc_now()
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES) as spool:
        size = 0
        async for chunk in request.stream():  # the body limit is enforced as this reads
            spool.write(chunk)
            size += len(chunk)
        headers = {"Content-Type": request.headers["content-type"], "Content-Length": str(size)}
        upstream = await gateway.stt.request(
            "POST", "/v1/audio/transcriptions", lambda: {"content": _chunks(spool), "headers": headers}, stream=True
        )

    def record(text: str | None, language: str | None = None, seconds: float = 0.0) -> None:
        if text is not None:
            gateway.events.record(
                "transcription", started, session, text=text, language=language, duration_seconds=seconds
            )

    media = upstream.headers.get("content-type", "")
    if media.startswith("text/event-stream"):
        return relay(upstream, SseTap(lambda events: record(events.get("transcript.text.done", {}).get("text"))))
    try:
        body = await upstream.aread()
    finally:
        await upstream.aclose()
    _record_answer(record, body, media)
    return Response(body, status_code=upstream.status_code, media_type=media or None)


def _record_answer(record: Callable[..., None], body: bytes, media: str) -> None:
    """An event from a whole transcription answer: JSON (``text``, ``duration``) or plain text."""
    if media.startswith("application/json"):
        try:
            answer = json.loads(body)
        except ValueError:
            return
        if isinstance(answer, dict) and isinstance(answer.get("text"), str):
            usage = answer.get("usage")
            seconds = answer.get("duration") or (usage.get("seconds") if isinstance(usage, dict) else 0) or 0.0
            record(answer["text"], None, float(seconds))
    elif media.startswith("text/plain"):
        record(body.decode("utf-8", "replace").strip())


@router.post(
    "/audio/speech",
    summary="OpenAI-compatible speech (streamed from the TTS broker)",
    response_class=StreamingResponse,
    dependencies=[Depends(limit_synthesize)],
    responses={
        200: {
            "description": "Audio bytes as they are made, or server-sent events with stream_format=sse",
            "content": {
                "audio/mpeg": {},
                "audio/wav": {},
                "audio/ogg": {},
                "audio/aac": {},
                "audio/flac": {},
                "audio/pcm": {},
                "text/event-stream": {},
            },
        },
        **json_errors(401, 413, 415, 422, 429, 502, 503, 504),
    },
)
async def speech(body: OpenAISpeechRequest, gateway: GatewayDep, session: SessionDep) -> StreamingResponse:
    """Fields and formats as OpenAI's ``audio.speech.create``; the bytes pass through as they come."""
    started = utc_now()
    payload = body.upstream_body()
    upstream = await brokers.open_speech(gateway.tts, payload, gateway.settings.voice_fallbacks)
    voice = payload.get("voice") if isinstance(payload.get("voice"), str) else None
    return relay(upstream, _speech_tap(gateway, upstream, body, voice, started, session))


def _speech_tap(
    gateway: Gateway,
    upstream: httpx.Response,
    body: OpenAISpeechRequest,
    voice: str | None,
    started: datetime,
    session: str | None,
) -> AudioTap | SseTap:
    def record(seconds: float) -> None:
        gateway.events.record(
            "synthesis",
            started,
            session,
            text=body.input,
            language=body.lang_code,
            duration_seconds=seconds,
            voice=voice,
        )

    media = upstream.headers.get("content-type", "")
    if media.startswith("text/event-stream"):
        # The done event's usage counts output audio in 20 ms units.
        return SseTap(
            lambda events: record(
                float(events.get("speech.audio.done", {}).get("usage", {}).get("output_tokens", 0)) / 50
            )
        )
    return AudioTap(media, record)
