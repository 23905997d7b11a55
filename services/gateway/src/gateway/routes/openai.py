"""``/v1/audio/*``: OpenAI's transcription and speech endpoints, passed through to the brokers."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse

from gateway.deps import (
    GatewayDep,
    SessionDep,
    limit_synthesize,
    limit_transcribe,
    require_multipart,
)
from gateway.schemas import errors, json_errors
from gateway.usecases import stream, transcription
from voicestack_common.contracts.tts import OpenAISpeechRequest
from voicestack_common.jsonbody import JsonBodyRoute

logger = logging.getLogger(__name__)
router = APIRouter(tags=["openai"], route_class=JsonBodyRoute)


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
        **errors(400, 401, 404, 413, 415, 422, 429, 502, 503, 504),
    },
)
async def transcriptions(request: Request, gateway: GatewayDep, session: SessionDep) -> Response:
    """The multipart body goes to the broker as sent (so every OpenAI field works); the answer comes
    back as the broker gives it, streamed when it streams."""
    return await transcription.forward_openai(gateway, request.stream(), request.headers["content-type"], session)


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
        **json_errors(401, 404, 413, 415, 422, 429, 502, 503, 504),
    },
)
async def speech(body: OpenAISpeechRequest, gateway: GatewayDep, session: SessionDep) -> StreamingResponse:
    """Fields and formats as OpenAI's ``audio.speech.create``; the bytes pass through as they come."""
    return await stream.openai_speech(gateway, body, session)
