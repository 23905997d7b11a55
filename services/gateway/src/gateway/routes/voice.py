"""``/api/voice/*``: the integration guide's REST endpoints, field for field (parsing and rendering only)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from starlette.datastructures import FormData, UploadFile

from gateway import brokers
from gateway.deps import (
    CallerDep,
    GatewayDep,
    SessionDep,
    authenticate,
    limit_synthesize,
    limit_transcribe,
)
from gateway.schemas import HealthResponse, TranscribeJsonRequest, errors, json_errors
from gateway.usecases import stream, synthesis, transcription
from voicestack_common.contracts.stt import TranscribeResponse
from voicestack_common.contracts.tts import SynthesizeRequest, SynthesizeResponse, VoicesResponse
from voicestack_common.encode import FORMATS
from voicestack_common.errors import ClientError, InvalidRequest, UnsupportedMediaType, validate_as
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
                        "model": {
                            "type": "string",
                            "description": "A speech-to-text model of `GET /v1/models`; unset: the default",
                            "example": "base",
                        },
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
    responses=errors(400, 401, 404, 413, 415, 422, 429, 502, 503, 504),
)
async def transcribe(request: Request, gateway: GatewayDep, session: SessionDep) -> TranscribeResponse:
    """``multipart/form-data`` with ``file``, ``language`` and ``model``, or JSON ``{audio_base64, language,
    model}``:
    ``{text, language, confidence, duration_seconds, model}``."""
    media = media_type(request.headers)
    if media == "multipart/form-data":
        async with request.form(max_files=4, max_fields=16) as form:
            upload, language, model = form.get("file"), _text(form, "language"), _text(form, "model")
            if not isinstance(upload, UploadFile):
                raise ClientError("no 'file' field in the upload", code="empty_body")
            return await transcription.transcribe(
                gateway,
                upload.file,
                filename=upload.filename or "audio",
                content_type=upload.content_type or "application/octet-stream",
                language=language or None,
                session=session,
                model=model or None,
            )
    if is_json_media(media):
        payload = validate_as(TranscribeJsonRequest, await read_json(request))
        audio = brokers.decode_base64_audio(payload.audio_base64, gateway.settings.max_upload_bytes)
        return await transcription.transcribe_bytes(
            gateway, audio, language=payload.language, session=session, model=payload.model
        )
    raise UnsupportedMediaType(f"expected multipart/form-data or application/json, got {media}")


def _text(form: FormData, name: str) -> str | None:
    """A form's text field (422 when it is a file)."""
    value = form.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidRequest(f"'{name}' must be a text field", code="invalid_request")
    return value


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
    return await synthesis.synthesize(gateway, body, session)


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
async def audio_stream(body: SynthesizeRequest, gateway: GatewayDep, session: SessionDep) -> StreamingResponse:
    """The audio itself, passed through chunk by chunk as it is synthesized (never buffered whole here)."""
    return await stream.audio_stream(gateway, body, session)


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
    return await synthesis.synthesize_batch(gateway, body, caller, session)


@router.get(
    "/voices",
    summary="Voices the TTS broker offers",
    response_model=VoicesResponse,
    dependencies=authed,
    responses=errors(401, 502, 503, 504),
)
async def voices(gateway: GatewayDep) -> VoicesResponse:
    """``{voices, default_voice, service}``."""
    return await synthesis.voices(gateway)


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
            "mqtt_bridge": gateway.monitor.bridge.state if gateway.monitor.bridge is not None else None,
        }
    )
