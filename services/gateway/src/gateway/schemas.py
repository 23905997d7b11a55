"""The gateway's own body models (the bodies it shares with the brokers are ``voicestack_common.contracts``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from voicestack_common.contracts.tts import SynthesizeRequest
from voicestack_common.schemas import ErrorResponse

_JSON_400 = "Empty body, not JSON, or nested deeper than 32 levels (`empty_body`, `invalid_json`, `json_too_deep`)"


def errors(*statuses: int, **described: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the given statuses, with the common descriptions."""
    common = {
        400: "Empty body or unreadable audio (`empty_body`, `invalid_audio`, `truncated_audio`)",
        401: "API key missing (`unauthorized`) or wrong (`invalid_api_key`)",
        404: "The `model` asked for is not offered (`model_not_found`; `GET /v1/models` lists them)",
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
        text = described[f"e{status}"] if f"e{status}" in described else common[status]
        out[status] = {"model": ErrorResponse, "description": text}
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
    model: str | None = Field(
        default=None, max_length=128, examples=["base"], description="A speech-to-text model of `GET /v1/models`"
    )


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


class BridgeHealth(BaseModel):
    """The MQTT bridge (and, as it sees it, the MQTT broker), when events are on."""

    url: str
    healthy: bool = Field(description="The bridge answers (it accepts events even while MQTT is down)")
    latency_ms: float | None = None
    error: str | None = None
    mqtt_broker: str | None = Field(default=None, examples=["127.0.0.1:1883"])
    mqtt_connected: bool | None = None
    mqtt_error: str | None = None


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
    mqtt_bridge: BridgeHealth | None = Field(default=None, description="Null when events are off")
    conversation_service: str | None = Field(default=None, description="Unset when no conversation service is set")
    conversation_healthy: bool | None = None


class WsTranscribe(BaseModel):
    """WebSocket ``{"type": "transcribe"}``."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["transcribe"]
    audio_base64: str
    language: str | None = None


class WsSynthesize(SynthesizeRequest):
    """WebSocket ``{"type": "synthesize"}``: the synthesis request's fields (the TTS contract)."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["synthesize"]
