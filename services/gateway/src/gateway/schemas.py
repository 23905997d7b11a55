"""HTTP and WebSocket body models: validation and the OpenAPI docs (field names as the guide has them)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from voicestack_common.schemas import ErrorResponse

_JSON_400 = "Empty body, not JSON, or nested deeper than 32 levels (`empty_body`, `invalid_json`, `json_too_deep`)"


def errors(*statuses: int, **described: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the given statuses, with the common descriptions."""
    common = {
        400: "Empty body or unreadable audio (`empty_body`, `invalid_audio`, `truncated_audio`)",
        401: "API key missing (`unauthorized`) or wrong (`invalid_api_key`)",
        413: "Body over `GATEWAY_MAX_UPLOAD_BYTES` (`payload_too_large`), checked as it streams in",
        415: "Wrong Content-Type (`unsupported_media_type`) or not audio (`unsupported_audio`)",
        422: "Invalid field (`invalid_request`, `invalid_base64`, `unknown_voice`, `text_too_long`, ...)",
        429: "Rate limit reached (`rate_limited`, with Retry-After)",
        502: "A broker failed (`upstream_error`, `upstream_unavailable`)",
        503: "No broker replica reachable (`no_upstream`), or every one saturated (`saturated`, Retry-After)",
        504: "A broker did not answer within its timeout (`upstream_timeout`, `inference_timeout`)",
    }
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        out[status] = {"model": ErrorResponse, "description": described.get(f"e{status}", common[status])}
    return out


def json_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``errors`` for a route with a JSON body: 400 says why a body is not read."""
    out = errors(*statuses)
    out[400] = {"model": ErrorResponse, "description": _JSON_400}
    return out


class TranscribeJsonRequest(BaseModel):
    """``POST /api/voice/transcribe`` as JSON (the guide's React example)."""

    audio_base64: str = Field(description="The audio file, base64 (a `data:` URL prefix is accepted)")
    language: str | None = Field(
        default=None, examples=["en"], description="ISO 639-1 code, or 'auto'; unset: the broker's default"
    )


class TranscribeResponse(BaseModel):
    """The integration guide's transcription result."""

    model_config = ConfigDict(extra="allow")

    text: str = Field(examples=["Hello, how are you?"])
    language: str = Field(examples=["en"])
    confidence: float | None = Field(default=None, description="0..1; null for silence")
    duration_seconds: float = Field(examples=[1.5])
    model: str = Field(examples=["tiny.en"])


class SynthesizeRequest(BaseModel):
    """One synthesis, as the integration guide sends it; unset fields get the TTS broker's defaults."""

    text: str = Field(min_length=1, examples=["Hello, this is a test"])
    voice: str | None = Field(
        default=None, examples=["af_heart"], description="A voice, a blend ('a+b', 'a(0.7)+b(0.3)') or an OpenAI name"
    )
    lang_code: str | None = Field(
        default=None, examples=["a"], description="Kokoro language: a (US English), b (UK English), j, z, ..."
    )
    speed: float | None = Field(default=None, ge=0.25, le=4.0, examples=[1.0])
    format: str | None = Field(default=None, examples=["wav"], description="wav (default), mp3, opus, flac, aac, pcm")

    def upstream_body(self) -> dict[str, Any]:
        """The fields the client set, for the broker (which fills in its defaults)."""
        return self.model_dump(exclude_none=True)


class AudioStreamRequest(SynthesizeRequest):
    """``POST /api/voice/audio-stream``: the same fields; the audio comes back as bytes."""

    format: str | None = Field(default="wav", examples=["wav"], description="wav (default), mp3, opus, aac, flac, pcm")


class SynthesizeResponse(BaseModel):
    """The integration guide's synthesis result."""

    model_config = ConfigDict(extra="allow")

    audio_base64: str = Field(examples=["UklGRiY..."])
    audio_sample_rate: int = Field(examples=[24000])
    audio_duration_seconds: float = Field(examples=[2.3])
    voice: str = Field(examples=["af_heart"])
    speed: float = Field(examples=[1.0])


class VoicesResponse(BaseModel):
    """The voices the TTS broker offers."""

    model_config = ConfigDict(extra="allow")

    voices: list[str] = Field(examples=[["jf_alpha", "jm_kumo"]])
    default_voice: str = Field(examples=["jf_alpha"])
    service: str = Field(examples=["Kokoro TTS"])


class ReplicaHealth(BaseModel):
    """One replica of a broker, as the last check saw it."""

    url: str
    healthy: bool
    busy: bool = Field(
        default=False,
        description="In rotation, but its last /readyz timed out: a busy broker (a dead one refuses connections)",
    )
    latency_ms: float | None = None
    error: str | None = None
    checked_at: float | None = Field(default=None, description="Unix time of the last check")


class EventsHealth(BaseModel):
    """The event sender towards the MQTT bridge."""

    enabled: bool
    pending: int
    sent: int
    dropped: int


class HealthResponse(BaseModel):
    """The guide's health shape, plus latency and replica detail."""

    status: Literal["healthy", "degraded", "unhealthy"]
    sst_service: str = Field(examples=["http://localhost:9082"])
    tts_service: str = Field(examples=["http://localhost:8080"])
    sst_healthy: bool
    tts_healthy: bool
    sst_latency_ms: float | None = Field(default=None, description="Fastest healthy replica's /readyz time")
    tts_latency_ms: float | None = None
    sst_replicas: list[ReplicaHealth]
    tts_replicas: list[ReplicaHealth]
    events: EventsHealth
    conversation_service: str | None = Field(default=None, description="Unset when no conversation service is set")
    conversation_healthy: bool | None = None


class OpenAISpeechRequest(BaseModel):
    """OpenAI's ``audio.speech.create`` body (plus Kokoro-FastAPI's ``lang_code`` and ``stream``);
    fields left out get the TTS broker's defaults, which also checks the values."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(
        default="kokoro",
        examples=["tts-1"],
        description="tts-1, tts-1-hd, gpt-4o-mini-tts or kokoro: all run the one model",
    )
    input: str = Field(min_length=1, examples=["Hello world"])
    voice: str | dict[str, Any] | None = Field(
        default=None, examples=["alloy"], description="A Kokoro voice, a blend, or an OpenAI voice name"
    )
    response_format: str = Field(default="mp3", description="mp3, opus, aac, flac, wav, pcm")
    speed: float | None = Field(default=None, ge=0.25, le=4.0)
    stream_format: str = Field(default="audio", description="audio (bytes) or sse (speech.audio.delta events)")
    instructions: str | None = Field(default=None, description="Accepted; Kokoro takes no instructions")
    lang_code: str | None = None

    def upstream_body(self) -> dict[str, Any]:
        """The body as the client sent it, for the broker."""
        return self.model_dump(exclude_unset=True)


class WsTranscribe(BaseModel):
    """WebSocket ``{"type": "transcribe"}``."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["transcribe"]
    audio_base64: str
    language: str | None = None


class WsSynthesize(SynthesizeRequest):
    """WebSocket ``{"type": "synthesize"}``."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["synthesize"]

    def upstream_body(self) -> dict[str, Any]:
        """The synthesis fields only."""
        return self.model_dump(exclude_none=True, exclude={"type"})
