"""Typed dependencies: what routes reach of the lifespan's resources."""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import Depends, Request, UploadFile

from stt_broker.engines.base import TranscribeOptions
from stt_broker.languages import normalize_language
from stt_broker.settings import SttSettings
from stt_broker.transcriber import Transcriber
from voicestack_common.audio import STT_SAMPLE_RATE, Pcm, decode_audio, pcm16_to_pcm, resample
from voicestack_common.errors import ClientError, InvalidRequest, UnsupportedMediaType

RAW_PCM_TYPES = ("audio/pcm", "audio/l16", "audio/x-raw", "application/octet-stream+pcm")
RAW_PCM_SUFFIXES = (".pcm", ".raw", ".s16le")


async def get_transcriber(request: Request) -> Transcriber:
    """The lifespan's transcriber."""
    transcriber: Transcriber = request.state.transcriber
    return transcriber


async def get_settings(request: Request) -> SttSettings:
    """The settings the app was built with."""
    settings: SttSettings = request.app.state.settings
    return settings


async def require_form(request: Request) -> None:
    """Uploads come as multipart/form-data; anything else is a 415, not a parse error."""
    content_type = request.headers.get("content-type", "")
    if not content_type:
        raise ClientError("the request has no body: send multipart/form-data with a 'file' field", code="empty_body")
    if not content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        raise UnsupportedMediaType(f"expected multipart/form-data, got {content_type.split(';')[0]}")


TranscriberDep = Annotated[Transcriber, Depends(get_transcriber)]
SettingsDep = Annotated[SttSettings, Depends(get_settings)]


async def read_audio(file: UploadFile | None, sample_rate: int | None, input_format: str | None) -> Pcm:
    """Decode an uploaded file (any container, or raw PCM16 at ``sample_rate``) to 16 kHz mono."""
    if file is None:
        raise ClientError("no 'file' field in the upload", code="empty_body")
    data = await file.read()
    content_type = (file.content_type or "").split(";")[0].strip().lower()
    name = (file.filename or "").lower()
    is_raw = (
        (input_format or "").lower() in ("pcm", "pcm_s16le", "s16le")
        or content_type in RAW_PCM_TYPES
        or name.endswith(RAW_PCM_SUFFIXES)
    )
    if is_raw:
        if sample_rate is None:
            raise InvalidRequest("raw PCM16 needs a 'sample_rate' field", code="missing_sample_rate")
        return resample(pcm16_to_pcm(data, sample_rate), STT_SAMPLE_RATE)
    return await anyio.to_thread.run_sync(decode_audio, data)


def options_from_form(
    language: str | None, prompt: str | None, temperature: float, word_timestamps: bool, default_language: str | None
) -> TranscribeOptions:
    """Validate the per-request options."""
    try:
        code = normalize_language(language if language is not None else default_language)
    except KeyError:
        raise InvalidRequest(
            f"unknown language {language!r}: use an ISO 639-1 code such as 'en', or 'auto'", code="unsupported_language"
        ) from None
    if not 0.0 <= temperature <= 1.0:
        raise InvalidRequest("temperature must be between 0 and 1", code="invalid_temperature")
    return TranscribeOptions(
        language=code, prompt=prompt or None, temperature=temperature, word_timestamps=word_timestamps
    )
