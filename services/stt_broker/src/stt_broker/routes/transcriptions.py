"""``POST /v1/transcribe`` (the integration guide's shape) and ``POST /v1/audio/transcriptions`` (OpenAI's)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi.responses import PlainTextResponse, Response, StreamingResponse

from stt_broker.deps import SettingsDep, TranscriberDep, options_from_form, read_audio, require_form
from stt_broker.engines.base import Segment, Transcript
from stt_broker.formats import language_name, segment_json, to_srt, to_vtt, word_json
from stt_broker.schemas import ERROR_RESPONSES
from stt_broker.transcriber import confidence
from voicestack_common.contracts.audio import audio_headers
from voicestack_common.contracts.stt import (
    OpenAITranscription,
    SegmentOut,
    VerboseTranscribeResponse,
    WordOut,
)
from voicestack_common.errors import InvalidRequest
from voicestack_common.streaming import SSE_MEDIA_TYPE, STREAM_HEADERS, sse_stream

logger = logging.getLogger(__name__)
router = APIRouter(tags=["transcription"], dependencies=[Depends(require_form)])

R = TypeVar("R", bound=Response)
_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")


def _response_format(value: str) -> str:
    if value not in _FORMATS:
        raise InvalidRequest(f"response_format must be one of {', '.join(_FORMATS)}", code="invalid_response_format")
    return value


def _render_text(transcript: Transcript, fmt: str) -> Response | None:
    if fmt == "text":
        return PlainTextResponse(transcript.text + "\n")
    if fmt == "srt":
        return PlainTextResponse(to_srt(transcript), media_type="application/x-subrip")
    if fmt == "vtt":
        return PlainTextResponse(to_vtt(transcript), media_type="text/vtt")
    return None


@router.post(
    "/transcribe",
    summary="Transcribe an uploaded audio file",
    response_model=VerboseTranscribeResponse,
    response_model_exclude_unset=True,
    responses={
        **ERROR_RESPONSES,
        200: {
            "description": "The transcript as JSON, text, SRT or WebVTT",
            "content": {"text/plain": {}, "text/vtt": {}},
        },
    },
)
async def transcribe(
    transcriber: TranscriberDep,
    settings: SettingsDep,
    response: Response,
    file: Annotated[
        UploadFile | None, File(description="Audio in any common container/codec, or raw PCM16 with sample_rate")
    ] = None,
    language: Annotated[str | None, Form(description="ISO 639-1 code, or 'auto'")] = None,
    prompt: Annotated[str | None, Form(description="Text to condition the decoder on")] = None,
    temperature: Annotated[float, Form(ge=0, le=1)] = 0.0,
    response_format: Annotated[str, Form(description="json | text | srt | vtt | verbose_json")] = "json",
    word_timestamps: Annotated[bool, Form(description="Add timed words to verbose_json")] = False,
    sample_rate: Annotated[int | None, Form(description="Sample rate of raw PCM16 uploads")] = None,
    input_format: Annotated[str | None, Form(description="'pcm_s16le' for raw PCM16; else detected")] = None,
    model: Annotated[
        str | None, Form(description="A model of `GET /v1/models`; unset: the broker's choice for the language")
    ] = None,
) -> VerboseTranscribeResponse | Response:
    """The integration guide's transcription: ``{text, language, confidence, duration_seconds, model}``."""
    fmt = _response_format(response_format)
    options = options_from_form(language, prompt, temperature, word_timestamps, settings.default_language)
    model_id = transcriber.choose(model, options.language)
    audio = await read_audio(file, sample_rate, input_format)
    transcript = await transcriber.transcribe(audio, options, model_id)
    logger.info("transcribed", extra={"audio_seconds": round(audio.duration, 3), "characters": len(transcript.text)})
    if (text := _render_text(transcript, fmt)) is not None:
        return _counted(text, audio.duration)
    _counted(response, audio.duration)
    answer = VerboseTranscribeResponse(
        text=transcript.text,
        language=transcript.language,
        confidence=confidence(transcript),
        duration_seconds=round(transcript.duration, 3),
        model=model_id,
    )
    if fmt == "verbose_json":
        answer.engine = transcriber.backend
        answer.segments = [
            SegmentOut.model_validate(segment_json(s, with_words=word_timestamps)) for s in transcript.segments
        ]
    return answer


@router.post(
    "/audio/transcriptions",
    summary="OpenAI-compatible transcription",
    response_model=OpenAITranscription,
    response_model_exclude_unset=True,
    responses={
        **ERROR_RESPONSES,
        200: {
            "description": "JSON, text, SRT, WebVTT, or server-sent events when stream=true",
            "content": {"text/plain": {}, "text/event-stream": {}},
        },
    },
)
async def openai_transcriptions(
    transcriber: TranscriberDep,
    settings: SettingsDep,
    response: Response,
    file: Annotated[UploadFile | None, File()] = None,
    model: Annotated[
        str, Form(description="A model of `GET /v1/models`; `whisper-1` is the broker's choice for the language")
    ] = "whisper-1",
    language: Annotated[str | None, Form()] = None,
    prompt: Annotated[str | None, Form()] = None,
    response_format: Annotated[str, Form()] = "json",
    temperature: Annotated[float, Form(ge=0, le=1)] = 0.0,
    timestamp_granularities: Annotated[list[str] | None, Form(alias="timestamp_granularities[]")] = None,
    stream: Annotated[bool, Form()] = False,
) -> OpenAITranscription | Response:
    """Field names, formats and streaming events as OpenAI's ``audio.transcriptions.create``."""
    fmt = _response_format(response_format)
    granularities = set(timestamp_granularities or ["segment"])
    if unknown := granularities - {"word", "segment"}:
        raise InvalidRequest(f"unknown timestamp granularity {sorted(unknown)}", code="invalid_timestamp_granularity")
    with_words = "word" in granularities
    options = options_from_form(language, prompt, temperature, with_words, settings.default_language)
    model_id = transcriber.choose(model, options.language)
    audio = await read_audio(file, None, None)
    if stream:
        transcriber.check(audio)
        events = sse_stream(_events(transcriber.stream(audio, options, model_id)), what="transcription")
        return _counted(StreamingResponse(events, media_type=SSE_MEDIA_TYPE, headers=STREAM_HEADERS), audio.duration)
    transcript = await transcriber.transcribe(audio, options, model_id)
    if (text := _render_text(transcript, fmt)) is not None:
        return _counted(text, audio.duration)
    _counted(response, audio.duration)
    answer = OpenAITranscription(
        text=transcript.text, usage={"type": "duration", "seconds": max(1, round(transcript.duration))}
    )
    if fmt == "json":
        return answer
    answer.task = "transcribe"
    answer.language = language_name(transcript.language)
    answer.duration = round(transcript.duration, 3)
    if "segment" in granularities:
        answer.segments = [SegmentOut.model_validate(segment_json(s, with_words=False)) for s in transcript.segments]
    if with_words:
        answer.words = [WordOut.model_validate(word_json(w)) for s in transcript.segments for w in s.words]
    return answer


def _counted(response: R, seconds: float) -> R:
    """The answer, with the seconds of audio heard in its header (callers count audio without decoding it)."""
    response.headers.update(audio_headers(seconds=seconds))
    return response


async def _events(events: AsyncIterator[Segment | Transcript]) -> AsyncIterator[dict[str, Any]]:
    """OpenAI's transcription stream: a delta per decoded segment, then done."""
    separator = ""
    async for event in events:
        if isinstance(event, Segment):
            if event.text:
                # Deltas concatenate to the final text, which joins segments with a space.
                yield {"type": "transcript.text.delta", "delta": separator + event.text}
                separator = " "
        else:
            yield {"type": "transcript.text.done", "text": event.text}
