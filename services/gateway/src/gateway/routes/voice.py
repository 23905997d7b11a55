"""``/api/voice/*``: the integration guide's REST endpoints, field for field."""

from __future__ import annotations

import asyncio
import io
import logging
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from starlette.datastructures import UploadFile

from gateway import brokers
from gateway.deps import (
    CallerDep,
    Gateway,
    GatewayDep,
    SessionDep,
    authenticate,
    limit_synthesize,
    limit_transcribe,
)
from gateway.schemas import (
    AudioStreamRequest,
    HealthResponse,
    SynthesizeRequest,
    SynthesizeResponse,
    TranscribeJsonRequest,
    TranscribeResponse,
    VoicesResponse,
    errors,
    json_errors,
)
from gateway.streaming import AudioTap, relay
from voicestack_common.encode import FORMATS
from voicestack_common.errors import ClientError, InvalidRequest, UnsupportedMediaType, VoicestackError, validate_as
from voicestack_common.events import utc_now
from voicestack_common.jsonbody import JsonBodyRoute, is_json_media, media_type, read_json

logger = logging.getLogger(__name__)
router = APIRouter(tags=["voice"], route_class=JsonBodyRoute)
authed = [Depends(authenticate)]

_TRANSCRIBE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "Audio in any common format"},
                        "language": {"type": "string", "description": "ISO 639-1 code, or 'auto'", "example": "en"},
                    },
                }
            },
            "application/json": {"schema": TranscribeJsonRequest.model_json_schema()},
        },
    }
}
_AUDIO_TYPES: dict[str, Any] = {FORMATS[f].media_type: {} for f in ("wav", "mp3", "opus", "aac", "flac", "pcm")}


@router.post(
    "/transcribe",
    summary="Transcribe audio (multipart upload, or base64 in JSON)",
    response_model=TranscribeResponse,
    dependencies=[Depends(limit_transcribe)],
    openapi_extra=_TRANSCRIBE_BODY,
    responses=errors(400, 401, 413, 415, 422, 429, 502, 503, 504),
)
async def transcribe(request: Request, gateway: GatewayDep, session: SessionDep) -> TranscribeResponse:
    """``multipart/form-data`` with ``file`` and ``language``, or JSON ``{audio_base64, language}``:
    ``{text, language, confidence, duration_seconds, model}``."""
    started = utc_now()
    media = media_type(request.headers)
    if media == "multipart/form-data":
        async with request.form(max_files=4, max_fields=16) as form:
            upload, language = form.get("file"), form.get("language")
            if not isinstance(upload, UploadFile):
                raise ClientError("no 'file' field in the upload", code="empty_body")
            if language is not None and not isinstance(language, str):
                raise InvalidRequest("'language' must be a text field", code="invalid_request")
            result = await brokers.transcribe(
                gateway.stt,
                upload.file,
                filename=upload.filename or "audio",
                content_type=upload.content_type or "application/octet-stream",
                language=language or None,
            )
    elif is_json_media(media):
        payload = validate_as(TranscribeJsonRequest, await read_json(request))
        audio = brokers.decode_base64_audio(payload.audio_base64, gateway.settings.max_upload_bytes)
        result = await brokers.transcribe(
            gateway.stt,
            io.BytesIO(audio),
            filename="audio",
            content_type="application/octet-stream",
            language=payload.language,
        )
    else:
        raise UnsupportedMediaType(f"expected multipart/form-data or application/json, got {media}")
    gateway.events.record(
        "transcription",
        started,
        session,
        text=result.text,
        language=result.language,
        duration_seconds=result.duration_seconds,
        model=result.model,
        confidence=result.confidence,
    )
    return result


async def synthesize_one(gateway: Gateway, body: SynthesizeRequest, session: str | None) -> SynthesizeResponse:
    """One synthesis through the TTS broker, and its event."""
    started = utc_now()
    result = await brokers.synthesize(gateway.tts, body.upstream_body(), gateway.settings.voice_fallbacks)
    gateway.events.record(
        "synthesis",
        started,
        session,
        text=body.text,
        language=body.lang_code,
        duration_seconds=result.audio_duration_seconds,
        voice=result.voice,
    )
    return result


@router.post(
    "/synthesize",
    summary="Synthesize speech, returned as base64 in JSON",
    response_model=SynthesizeResponse,
    dependencies=[Depends(limit_synthesize)],
    responses=json_errors(401, 413, 415, 422, 429, 502, 503, 504),
)
async def synthesize(body: SynthesizeRequest, gateway: GatewayDep, session: SessionDep) -> SynthesizeResponse:
    """``{text, voice, lang_code, speed}`` to ``{audio_base64, audio_sample_rate, audio_duration_seconds,
    voice, speed}`` (WAV unless ``format`` says otherwise)."""
    return await synthesize_one(gateway, body, session)


@router.post(
    "/audio-stream",
    summary="Synthesize speech, streamed as audio bytes",
    response_class=StreamingResponse,
    dependencies=[Depends(limit_synthesize)],
    responses={
        200: {"description": "Audio bytes as the TTS broker makes them (WAV by default)", "content": _AUDIO_TYPES},
        **json_errors(401, 413, 415, 422, 429, 502, 503, 504),
    },
)
async def audio_stream(body: AudioStreamRequest, gateway: GatewayDep, session: SessionDep) -> StreamingResponse:
    """The audio itself, passed through chunk by chunk as it is synthesized (never buffered whole here)."""
    started = utc_now()
    payload: dict[str, Any] = {
        "model": brokers.STREAM_MODEL,
        "input": body.text,
        "response_format": body.format or "wav",
        "stream_format": "audio",
    }
    payload.update(
        {
            k: v
            for k, v in (("voice", body.voice), ("speed", body.speed), ("lang_code", body.lang_code))
            if v is not None
        }
    )
    upstream = await brokers.open_speech(gateway.tts, payload, gateway.settings.voice_fallbacks)

    def done(seconds: float) -> None:
        gateway.events.record(
            "synthesis",
            started,
            session,
            text=body.text,
            language=body.lang_code,
            duration_seconds=seconds,
            voice=payload.get("voice"),
        )

    return relay(upstream, AudioTap(upstream.headers.get("content-type", ""), done))


@router.post(
    "/synthesize-batch",
    summary="Synthesize several texts, with bounded parallelism",
    response_model=list[SynthesizeResponse],
    responses=json_errors(401, 413, 415, 422, 429, 502, 503, 504),
)
async def synthesize_batch(
    body: list[SynthesizeRequest], gateway: GatewayDep, caller: CallerDep, session: SessionDep
) -> list[SynthesizeResponse]:
    """A JSON array of synthesis requests; the results in the same order. The first failure fails the
    batch (its ``details.index`` says which item)."""
    settings = gateway.settings
    if len(body) > settings.batch_max_items:
        raise InvalidRequest(
            f"a batch holds at most {settings.batch_max_items} requests, got {len(body)}", code="batch_too_large"
        )
    if not body:
        return []
    gateway.charge("synthesize", caller, len(body))
    slots = asyncio.Semaphore(settings.batch_concurrency)
    results: list[SynthesizeResponse | None] = [None] * len(body)

    async def one(index: int, item: SynthesizeRequest) -> None:
        async with slots:
            try:
                results[index] = await synthesize_one(gateway, item, session)
            except VoicestackError as exc:
                exc.message = f"item {index}: {exc.message}"
                exc.details = {"index": index, **(exc.details if isinstance(exc.details, dict) else {})}
                raise

    try:
        async with asyncio.TaskGroup() as group:
            for index, item in enumerate(body):
                group.create_task(one(index, item))
    except BaseExceptionGroup as failed:
        raise _first_error(failed) from None
    return [result for result in results if result is not None]


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The failure of the earliest item, so the answer does not depend on timing."""
    flat: list[BaseException] = []
    for exc in group.exceptions:
        flat.extend(exc.exceptions if isinstance(exc, BaseExceptionGroup) else [exc])
    known = [e for e in flat if isinstance(e, VoicestackError)]
    if not known:
        return flat[0]
    return min(known, key=lambda e: e.details.get("index", 0) if isinstance(e.details, dict) else 0)


@router.get(
    "/voices",
    summary="Voices the TTS broker offers",
    response_model=VoicesResponse,
    dependencies=authed,
    responses=errors(401, 502, 503, 504),
)
async def voices(gateway: GatewayDep) -> VoicesResponse:
    """``{voices, default_voice, service}``."""
    return await brokers.voices(gateway.tts)


@router.get("/health", summary="Health of both brokers (no API key needed)", response_model=HealthResponse)
async def health(gateway: GatewayDep) -> HealthResponse:
    """The guide's ``{status, sst_service, tts_service, sst_healthy, tts_healthy}``, plus latency and
    per-replica detail. Always 200: ``status`` says ``healthy``, ``degraded`` or ``unhealthy``."""
    await gateway.monitor.fresh()
    stt, tts = gateway.monitor.report("stt"), gateway.monitor.report("tts")
    healthy = [stt["healthy"], tts["healthy"]]
    events = gateway.events
    conversation = gateway.monitor.report("conversation") if "conversation" in gateway.monitor.upstreams else None
    return HealthResponse.model_validate(
        {
            "conversation_service": conversation["url"] if conversation else None,
            "conversation_healthy": conversation["healthy"] if conversation else None,
            "status": "healthy" if all(healthy) else "degraded" if any(healthy) else "unhealthy",
            "sst_service": stt["url"],
            "tts_service": tts["url"],
            "sst_healthy": stt["healthy"],
            "tts_healthy": tts["healthy"],
            "sst_latency_ms": stt["latency_ms"],
            "tts_latency_ms": tts["latency_ms"],
            "sst_replicas": stt["replicas"],
            "tts_replicas": tts["replicas"],
            "events": {
                "enabled": events.enabled,
                "pending": events.pending,
                "sent": events.sent,
                "dropped": events.dropped,
            },
        }
    )
