"""What the TTS broker is asked and answers; the gateway sends and reads the same classes.

Ranges and choices are documented in the schema but checked by the broker, so
that each problem gets its own error code (``invalid_speed``,
``unsupported_format``, ...) rather than a generic one, wherever it is sent.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from voicestack_common.encode import FORMATS

OPENAI_FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")

# Kokoro names a language by one letter, each voice name's first (``af_heart``: ``a``); the ISO 639-1
# language each letter speaks. English has two, American (``a``) and British (``b``).
KOKORO_LANGUAGE_ISO: dict[str, str] = {
    "a": "en",
    "b": "en",
    "e": "es",
    "f": "fr",
    "h": "hi",
    "i": "it",
    "p": "pt",
    "j": "ja",
    "z": "zh",
}


def kokoro_codes(language: str | None) -> tuple[str, ...]:
    """Kokoro's codes for a language as Whisper names it (``es``, ``es-ES``); none when Kokoro does not
    speak it."""
    if not language:
        return ()
    iso = language.strip().lower().split("-")[0].split("_")[0]
    return tuple(code for code, spoken in KOKORO_LANGUAGE_ISO.items() if spoken == iso)


SYNTHESIZE_FORMATS = tuple(FORMATS)
_SPEED: dict[str, Any] = {"minimum": 0.25, "maximum": 4.0}
_VOICE_HELP = (
    "A voice (`af_heart`), a blend as Kokoro-FastAPI writes it (`af_bella+af_sky`, "
    "`af_bella(0.7)+af_sky(0.3)`) or an OpenAI voice name (`alloy`, `nova`, ...); "
    "unset: the configured default voice."
)
_LANG_HELP = "Kokoro language code: a, b, e, f, h, i, p, j, z (or en-us, en-gb, ...); unset: the default."


class SynthesizeRequest(BaseModel):
    """The integration guide's synthesis request; unset fields get the broker's defaults."""

    text: str = Field(description="What to say.", examples=["Hello, this is a test"])
    voice: str | None = Field(default=None, description=_VOICE_HELP, examples=["af_heart"])
    lang_code: str | None = Field(default=None, description=_LANG_HELP, examples=["a"])
    speed: float | None = Field(
        default=None, description="0.25 to 4.0; unset: the default speed.", json_schema_extra=_SPEED, examples=[1.0]
    )
    format: str = Field(
        default="wav",
        description="Audio format of `audio_base64` (and of `/api/voice/audio-stream`).",
        json_schema_extra={"enum": list(SYNTHESIZE_FORMATS)},
    )

    def upstream_body(self) -> dict[str, Any]:
        """The fields the client set, for the broker (which fills in its defaults)."""
        return self.model_dump(exclude_none=True, include=set(SynthesizeRequest.model_fields))


class SynthesizeResponse(BaseModel):
    """The integration guide's synthesis result."""

    model_config = ConfigDict(extra="allow")

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

    model_config = ConfigDict(extra="allow")

    model: str = Field(
        default="kokoro",
        description="A model of `GET /v1/models` (kind tts); tts-1, tts-1-hd, gpt-4o-mini-tts and kokoro mean "
        "the default model. Not offered: 404 `model_not_found`.",
        examples=["tts-1"],
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

    def upstream_body(self) -> dict[str, Any]:
        """The body as the client sent it, for the broker."""
        return self.model_dump(exclude_unset=True)


class VoiceInfo(BaseModel):
    """One voice, with the language it speaks and whether this machine can speak it."""

    id: str = Field(examples=["af_heart"])
    lang_code: str = Field(description="Kokoro's language code, the voice's first letter", examples=["a"])
    language: str = Field(description="BCP 47 tag of that language", examples=["en-US"])
    language_name: str = Field(examples=["American English"])
    gender: Literal["female", "male"] | None = Field(default=None, examples=["female"])
    available: bool = Field(default=True, description="False when this machine lacks the language's text front end")
    reason: str | None = Field(default=None, description="Why the voice is not available")


class VoicesResponse(BaseModel):
    """The integration guide's voice list, plus each voice's language and gender."""

    model_config = ConfigDict(extra="allow")

    voices: list[str] = Field(examples=[["af_heart", "af_bella", "am_adam"]])
    default_voice: str = Field(examples=["af_heart"])
    service: str = Field(examples=["Kokoro TTS"])
    details: list[VoiceInfo] = Field(default_factory=list, description="Each voice in `voices`, in the same order")
