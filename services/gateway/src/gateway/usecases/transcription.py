"""Transcribe: audio to the guide's answer, or OpenAI's request passed through; one event each."""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import AsyncIterable
from datetime import datetime
from typing import IO

from starlette.responses import Response

from gateway import brokers
from gateway.deps import Gateway
from gateway.streaming import SseTap, passed_headers, relay
from voicestack_common.contracts.audio import audio_seconds
from voicestack_common.contracts.stt import TranscribeResponse
from voicestack_common.events import utc_now

# Uploads up to this size stay in memory on their way through; larger ones go to a temp file.
SPOOL_MEMORY_BYTES = 1024 * 1024


async def transcribe(
    gateway: Gateway,
    audio: IO[bytes],
    *,
    filename: str,
    content_type: str,
    language: str | None,
    session: str | None,
    model: str | None = None,
) -> TranscribeResponse:
    """The guide's transcription of one file, and its event."""
    started = utc_now()
    result = await brokers.transcribe(
        gateway.stt, audio, filename=filename, content_type=content_type, language=language, model=model
    )
    gateway.events.transcribed(
        started,
        session,
        text=result.text,
        seconds=result.duration_seconds,
        language=result.language,
        model=result.model,
        confidence=result.confidence,
    )
    return result


async def transcribe_bytes(
    gateway: Gateway, audio: bytes, *, language: str | None, session: str | None, model: str | None = None
) -> TranscribeResponse:
    """The same, for audio already in memory (base64 in JSON, a WebSocket message)."""
    return await transcribe(
        gateway,
        io.BytesIO(audio),
        filename="audio",
        content_type="application/octet-stream",
        language=language,
        session=session,
        model=model,
    )


async def forward_openai(
    gateway: Gateway, body: AsyncIterable[bytes], content_type: str, session: str | None
) -> Response:
    """OpenAI's multipart request passed to the broker as sent (so every field works); its answer
    passed back as it comes, streamed when it streams, and its event recorded."""
    started = utc_now()
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES) as spool:
        size = 0
        async for chunk in body:  # the body limit is enforced as this reads
            spool.write(chunk)
            size += len(chunk)
        upstream = await brokers.forward_transcription(gateway.stt, spool, size, content_type)
    seconds = audio_seconds(upstream.headers) or 0.0
    media = upstream.headers.get("content-type", "")
    if media.startswith("text/event-stream"):
        return relay(
            upstream,
            SseTap(
                lambda events: _record(
                    gateway, started, session, events.get("transcript.text.done", {}).get("text"), seconds
                )
            ),
        )
    try:
        answer = await upstream.aread()
    finally:
        await upstream.aclose()
    _record(gateway, started, session, _text_of(answer, media), seconds)
    return Response(
        answer, status_code=upstream.status_code, media_type=media or None, headers=passed_headers(upstream)
    )


def _record(gateway: Gateway, started: datetime, session: str | None, text: object, seconds: float) -> None:
    if isinstance(text, str):
        gateway.events.transcribed(started, session, text=text, seconds=seconds)


def _text_of(answer: bytes, media: str) -> str | None:
    """The transcript in a whole answer: JSON's ``text``, or plain text (SRT and WebVTT are not read)."""
    if media.startswith("application/json"):
        try:
            body = json.loads(answer)
        except ValueError:
            return None
        return body.get("text") if isinstance(body, dict) and isinstance(body.get("text"), str) else None
    if media.startswith("text/plain"):
        return answer.decode("utf-8", "replace").strip()
    return None
