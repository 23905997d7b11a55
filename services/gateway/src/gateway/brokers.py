"""Calls to the brokers, in the shared wire contract: transcribe, synthesize, stream, voices."""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import IO, Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from gateway.replicas import ReplicaSet
from voicestack_common.contracts.stt import TranscribeResponse
from voicestack_common.contracts.tts import SynthesizeResponse, VoicesResponse
from voicestack_common.errors import InvalidRequest, PayloadTooLarge, UpstreamError, VoicestackError

logger = logging.getLogger(__name__)

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
_DATA_URL = re.compile(r"^data:[^,]*;base64,", re.IGNORECASE)
_CHUNK = 64 * 1024


def decode_base64_audio(value: str, max_bytes: int) -> bytes:
    """Audio from a base64 string (or a ``data:`` URL), checked against the upload limit."""
    text = _DATA_URL.sub("", value.strip(), count=1)
    if len(text) * 3 // 4 > max_bytes + 3:
        raise PayloadTooLarge(f"the audio is larger than the limit of {max_bytes} bytes")
    try:
        data = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("audio_base64 is not valid base64", code="invalid_base64") from None
    if not data:
        raise InvalidRequest("audio_base64 is empty", code="empty_audio")
    return data


def parse_answer(model: type[M], response: httpx.Response, what: str) -> M:
    """A broker's JSON answer as ``model``; anything else is the broker's fault (502)."""
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        problem = exc.errors()[0]
        raise UpstreamError(
            f"the {what} answer is not what the gateway expects: {'.'.join(map(str, problem['loc']))} {problem['msg']}",
            code="upstream_invalid_response",
        ) from None


async def transcribe(
    stt: ReplicaSet,
    audio: IO[bytes],
    *,
    filename: str,
    content_type: str,
    language: str | None,
    model: str | None = None,
) -> TranscribeResponse:
    """The guide's transcription of one file, from the STT broker's ``/v1/transcribe`` (``model``:
    one of its ``/v1/models``; unset: its default)."""

    def args() -> dict[str, Any]:
        audio.seek(0)
        data = {"language": language} if language else {}
        if model:
            data["model"] = model
        return {"files": {"file": (filename, audio, content_type)}, "data": data}

    response = await stt.request("POST", "/v1/transcribe", args)
    return parse_answer(TranscribeResponse, response, "STT broker's")


async def forward_transcription(stt: ReplicaSet, body: IO[bytes], size: int, content_type: str) -> httpx.Response:
    """An OpenAI transcription request passed to the broker as sent; its streamed answer, open."""

    async def chunks() -> AsyncIterator[bytes]:
        body.seek(0)
        while chunk := body.read(_CHUNK):
            yield chunk

    headers = {"Content-Type": content_type, "Content-Length": str(size)}
    return await stt.request(
        "POST", "/v1/audio/transcriptions", lambda: {"content": chunks(), "headers": headers}, stream=True
    )


async def with_voice_fallback(
    tts: ReplicaSet,
    body: dict[str, Any],
    fallbacks: Mapping[str, list[str]],
    call: Callable[[dict[str, Any]], Awaitable[T]],
) -> T:
    """Run ``call(body)``; when the broker lacks a voice the integration guide names (``af_heart``),
    run it once more with the closest voice it has, else with its default voice."""
    try:
        return await call(body)
    except VoicestackError as error:
        voice = body.get("voice")
        if error.code != "unknown_voice" or not isinstance(voice, str) or voice not in fallbacks:
            raise
        replacement = await _replacement(tts, fallbacks[voice], error.details)
        if not replacement:
            raise
    logger.info("voice %r is not offered; using %r", voice, replacement)
    return await call({**body, "voice": replacement})


async def _replacement(tts: ReplicaSet, candidates: list[str], details: Any) -> str | None:
    """The first candidate the broker offers, else its default voice."""
    offered = details.get("voices") if isinstance(details, dict) else None
    catalog: VoicesResponse | None = None
    if not isinstance(offered, list):
        catalog = await voices(tts)
        offered = catalog.voices
    found = next((candidate for candidate in candidates if candidate in offered), None)
    if found is None:
        found = (catalog or await voices(tts)).default_voice
    return found or None


async def synthesize(tts: ReplicaSet, body: dict[str, Any], fallbacks: Mapping[str, list[str]]) -> SynthesizeResponse:
    """The guide's synthesis (base64 audio in JSON), from the TTS broker's ``/v1/synthesize``."""

    async def call(payload: dict[str, Any]) -> SynthesizeResponse:
        response = await tts.request("POST", "/v1/synthesize", lambda: {"json": payload})
        return parse_answer(SynthesizeResponse, response, "TTS broker's")

    return await with_voice_fallback(tts, body, fallbacks, call)


async def open_speech(tts: ReplicaSet, body: dict[str, Any], fallbacks: Mapping[str, list[str]]) -> httpx.Response:
    """A streamed ``/v1/audio/speech`` response, open: the caller must close it."""

    async def call(payload: dict[str, Any]) -> httpx.Response:
        return await tts.request("POST", "/v1/audio/speech", lambda: {"json": payload}, stream=True)

    return await with_voice_fallback(tts, body, fallbacks, call)


async def voices(tts: ReplicaSet) -> VoicesResponse:
    """The TTS broker's ``/v1/voices``."""
    return parse_answer(VoicesResponse, await tts.request("GET", "/v1/voices"), "TTS broker's voices")
