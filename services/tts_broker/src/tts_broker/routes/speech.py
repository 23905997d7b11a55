"""``POST /v1/audio/speech``: OpenAI's speech endpoint, streamed as the audio is made."""

from __future__ import annotations

import base64
import logging
import math
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from tts_broker.deps import SynthesizerDep
from tts_broker.schemas import ERROR_RESPONSES
from tts_broker.synthesizer import Chunk
from voicestack_common.contracts.audio import audio_headers
from voicestack_common.contracts.tts import OPENAI_FORMATS, OpenAISpeechRequest, VoiceId
from voicestack_common.encode import FORMATS, WAV_HEADER_BYTES
from voicestack_common.errors import InvalidRequest, VoicestackError
from voicestack_common.jsonbody import JsonBodyRoute
from voicestack_common.streaming import (
    SSE_MEDIA_TYPE,
    STREAM_HEADERS,
    CutOffStreamingResponse,
    StreamCutOff,
    sse_stream,
)

logger = logging.getLogger(__name__)
router = APIRouter(tags=["speech"], route_class=JsonBodyRoute)

_AUDIO_CONTENT: dict[str, Any] = {FORMATS[f].media_type: {} for f in OPENAI_FORMATS}


def usage(characters: int, seconds: float) -> dict[str, int]:
    """OpenAI's usage block: input is characters, output is audio in 20 ms units."""
    output = math.ceil(seconds * 50)
    return {"input_tokens": characters, "output_tokens": output, "total_tokens": characters + output}


@router.post(
    "/audio/speech",
    summary="OpenAI-compatible speech",
    response_class=StreamingResponse,
    responses={
        **ERROR_RESPONSES,
        200: {
            "description": "Audio bytes as they are encoded, or server-sent events with stream_format=sse",
            "content": {**_AUDIO_CONTENT, "text/event-stream": {}},
        },
    },
)
async def speech(body: OpenAISpeechRequest, synthesizer: SynthesizerDep, request: Request) -> Response:
    """Fields, formats and stream events as OpenAI's ``audio.speech.create``; ``model`` is a catalog id
    (``GET /v1/models``), or ``tts-1``, ``tts-1-hd``, ``kokoro`` for the default."""
    if body.stream_format not in ("audio", "sse"):
        raise InvalidRequest("stream_format must be 'audio' or 'sse'", code="unsupported_stream_format")
    voice = body.voice.id if isinstance(body.voice, VoiceId) else body.voice
    job = await synthesizer.job(
        body.input, voice, body.lang_code, body.speed, body.response_format, OPENAI_FORMATS, body.model
    )
    if body.instructions:
        logger.debug("instructions ignored: Kokoro takes none")
    logger.info(
        "speech",
        extra={
            "characters": len(body.input),
            "format": job.format,
            "voice": job.request.voice.spec,
            "model": job.model,
            "stream_format": body.stream_format,
        },
    )
    errors = request.app.state.http_metrics.errors
    headers = dict(STREAM_HEADERS)
    if body.stream_format == "sse":
        chunks = synthesizer.stream(job)
        first = await anext(chunks)  # an error before any audio still gets its own status code
        events = sse_stream(_events(first, chunks, len(body.input)), what="speech", on_error=_count(errors))
        return StreamingResponse(events, media_type=SSE_MEDIA_TYPE, headers=headers)
    media_type = FORMATS[job.format].media_type
    headers["Content-Disposition"] = f'inline; filename="speech.{job.format}"'
    if not body.stream:
        result = await synthesizer.synthesize(job)
        headers.update(audio_headers(seconds=result.duration))
        return Response(result.audio, media_type=media_type, headers=headers)
    chunks = synthesizer.stream(job)
    first = await anext(chunks)
    headers.update(_counting_headers(job.format, synthesizer.output_rate(job.format)))
    return CutOffStreamingResponse(_audio(first, chunks, errors), media_type=media_type, headers=headers)


def _counting_headers(fmt: str, sample_rate: int) -> dict[str, str]:
    """How a caller counts the seconds of a stream of uncompressed PCM16 mono (WAV after its header)."""
    if fmt not in ("wav", "pcm"):
        return {}
    return audio_headers(byte_rate=sample_rate * 2, data_offset=WAV_HEADER_BYTES if fmt == "wav" else 0)


async def _chain(first: Chunk, rest: AsyncGenerator[Chunk, None]) -> AsyncIterator[Chunk]:
    yield first
    async for chunk in rest:
        yield chunk


async def _audio(first: Chunk, rest: AsyncGenerator[Chunk, None], errors: Any) -> AsyncIterator[bytes]:
    """The encoded bytes; a failure after the first ones cuts the response short."""
    try:
        async for chunk in _chain(first, rest):
            if chunk.data:
                yield chunk.data
    except VoicestackError as exc:
        errors.labels(code=exc.code).inc()
        logger.warning("audio stream cut off: %s: %s", exc.code, exc.message)
        raise StreamCutOff from exc
    finally:
        await rest.aclose()


async def _events(first: Chunk, rest: AsyncGenerator[Chunk, None], characters: int) -> AsyncIterator[dict[str, Any]]:
    """``speech.audio.delta`` per chunk, then ``speech.audio.done``."""
    seconds = 0.0
    try:
        async for chunk in _chain(first, rest):
            seconds += chunk.seconds
            if chunk.data:
                yield {"type": "speech.audio.delta", "audio": base64.b64encode(chunk.data).decode("ascii")}
        yield {"type": "speech.audio.done", "usage": usage(characters, seconds)}
    finally:
        await rest.aclose()


def _count(errors: Any) -> Callable[[str], None]:
    return lambda code: errors.labels(code=code).inc()
