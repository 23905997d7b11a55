"""HTTP body models (for validation and the OpenAPI docs); engine types live in engines.base.

Ranges and choices are documented in the schema but checked by the
synthesizer, so that each problem gets its own error code
(``invalid_speed``, ``unsupported_format``, ...) rather than a generic one.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from voicestack_common.encode import FORMATS
from voicestack_common.schemas import ErrorResponse

OPENAI_FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")
SYNTHESIZE_FORMATS = tuple(FORMATS)
_SPEED: dict[str, Any] = {"minimum": 0.25, "maximum": 4.0}
_VOICE_HELP = (
    "A voice (`af_heart`), a blend as Kokoro-FastAPI writes it (`af_bella+af_sky`, "
    "`af_bella(0.7)+af_sky(0.3)`) or an OpenAI voice name (`alloy`, `nova`, ...); "
    "unset: the configured default voice."
)
_LANG_HELP = "Kokoro language code: a, b, e, f, h, i, p, j, z (or en-us, en-gb, ...); unset: the default."


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "No body or not JSON (`empty_body`, `invalid_json`)"},
    413: {"model": ErrorResponse, "description": "Body over the size limit (`payload_too_large`)"},
    415: {"model": ErrorResponse, "description": "Not JSON, or not UTF-8 (`invalid_encoding`)"},
    422: {
        "model": ErrorResponse,
        "description": "`empty_text`, `text_too_long`, `unknown_voice`, "
        "`invalid_voice_blend`, `invalid_speed`, "
        "`unsupported_format`, `unsupported_lang_code`",
    },
    502: {"model": ErrorResponse, "description": "The remote Kokoro server failed"},
    503: {"model": ErrorResponse, "description": "Queue full (`saturated`, with Retry-After)"},
    504: {"model": ErrorResponse, "description": "Synthesis took longer than the timeout"},
}


class SynthesizeRequest(BaseModel):
    """The integration guide's synthesis request."""

    text: str = Field(description="What to say.", examples=["Hello, this is a test"])
    voice: str | None = Field(default=None, description=_VOICE_HELP, examples=["af_heart"])
    lang_code: str | None = Field(default=None, description=_LANG_HELP, examples=["a"])
    speed: float | None = Field(
        default=None, description="0.25 to 4.0; unset: the default speed.", json_schema_extra=_SPEED, examples=[1.0]
    )
    format: str = Field(
        default="wav",
        description="Audio format of `audio_base64`.",
        json_schema_extra={"enum": list(SYNTHESIZE_FORMATS)},
    )


class SynthesizeResponse(BaseModel):
    """The integration guide's synthesis result."""

    audio_base64: str = Field(description="The audio file, base64-encoded", examples=["UklGRiY..."])
    audio_sample_rate: int = Field(examples=[24000])
    audio_duration_seconds: float = Field(examples=[2.3])
    voice: str = Field(description="The voice used (a blend in its normalised spelling)", examples=["af_heart"])
    speed: float = Field(examples=[1.0])


class VoiceId(BaseModel):
    """OpenAI's custom-voice reference; here ``id`` names a Kokoro voice or blend."""

    id: str


class OpenAISpeechRequest(BaseModel):
    """OpenAI's ``audio.speech.create`` body, plus Kokoro-FastAPI's ``stream`` and ``lang_code``."""

    model: str = Field(
        default="kokoro",
        description="tts-1, tts-1-hd, gpt-4o-mini-tts, kokoro or the served model id: all run the same model.",
    )
    input: str = Field(description="What to say.", examples=["Hello world"])
    voice: str | VoiceId | None = Field(default=None, description=_VOICE_HELP, examples=["alloy"])
    response_format: str = Field(default="mp3", json_schema_extra={"enum": list(OPENAI_FORMATS)})
    speed: float | None = Field(default=None, json_schema_extra=_SPEED, examples=[1.0])
    instructions: str | None = Field(
        default=None, description="Accepted for compatibility; Kokoro takes no instructions."
    )
    stream_format: str = Field(
        default="audio",
        description="`audio` (bytes as they are encoded) or `sse` (speech.audio.delta events).",
        json_schema_extra={"enum": ["audio", "sse"]},
    )
    stream: bool = Field(
        default=True, description="Kokoro-FastAPI's switch: false sends the whole file with a Content-Length."
    )
    lang_code: str | None = Field(default=None, description=_LANG_HELP)


class VoicesResponse(BaseModel):
    """The integration guide's voice list."""

    voices: list[str] = Field(examples=[["af_heart", "af_bella", "am_adam"]])
    default_voice: str = Field(examples=["af_heart"])
    service: str = Field(examples=["Kokoro TTS"])


class KokoroVoice(BaseModel):
    """One voice in Kokoro-FastAPI's list."""

    id: str
    name: str


class KokoroVoiceList(BaseModel):
    """Kokoro-FastAPI's ``GET /v1/audio/voices`` (``?legacy=true``: plain names)."""

    voices: list[KokoroVoice] | list[str]
