"""MQTT command payloads: what clients send to ``{prefix}/cmd/*`` and what they get back."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from voicestack_common.errors import VoicestackError, error_body
from voicestack_common.events import MAX_TEXT_CHARS
from voicestack_common.schemas import ErrorResponse

EVENT_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Empty body or not JSON (`invalid_json`)"},
    413: {"model": ErrorResponse, "description": "Body over `MQTT_BRIDGE_MAX_UPLOAD_BYTES` (`payload_too_large`)"},
    415: {"model": ErrorResponse, "description": "Not `application/json` (`unsupported_media_type`)"},
    422: {"model": ErrorResponse, "description": "Not a valid `SpeechEvent` (`invalid_event`)"},
    503: {
        "model": ErrorResponse,
        "description": "Outbox full (`outbox_full`, with Retry-After) or its disk failing (`outbox_unavailable`)",
    },
}

PUBLISH_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    **{status: EVENT_ERROR_RESPONSES[status] for status in (400, 415, 503)},
    403: {
        "model": ErrorResponse,
        "description": "The topic is outside `MQTT_BRIDGE_PUBLISH_ALLOW` (`topic_not_allowed`) or one the bridge "
        "keeps for itself (`topic_reserved`); nothing is stored",
    },
    413: {
        "model": ErrorResponse,
        "description": "Payload over 65,536 bytes in UTF-8, or body over `MQTT_BRIDGE_MAX_UPLOAD_BYTES` "
        "(`payload_too_large`)",
    },
    422: {"model": ErrorResponse, "description": "Not a valid `PublishRequest` (`invalid_publish`)"},
}

# Request ids become a topic level and an X-Request-ID: the safe set of both.
REQUEST_ID_PATTERN = r"^[A-Za-z0-9._:\-]{1,64}$"


class SynthesizeCommand(BaseModel):
    """``{prefix}/cmd/synthesize``: the gateway's ``/api/voice/synthesize`` body, plus an ``id``."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, pattern=REQUEST_ID_PATTERN)
    """Echoed in the answer; MQTT 3.1.1 clients need it (the answer goes to ``.../response/{id}``)."""
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    voice: str | None = Field(default=None, max_length=256)
    lang_code: str | None = Field(default=None, max_length=16)
    speed: float | None = Field(default=None, gt=0, le=10)

    def gateway_body(self) -> dict[str, Any]:
        """The JSON the gateway takes: the fields that were set, without ``id``."""
        return self.model_dump(exclude={"id"}, exclude_none=True)


class TranscribeCommand(BaseModel):
    """``{prefix}/cmd/transcribe``: audio as base64 or a URL, and an optional language."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, pattern=REQUEST_ID_PATTERN)
    audio_base64: str | None = Field(default=None, min_length=1)
    audio_url: str | None = Field(default=None, pattern=r"^https?://", max_length=2048)
    language: str | None = Field(default=None, max_length=16)
    filename: str = Field(default="audio", min_length=1, max_length=255)
    """Sent to the gateway with the audio; an extension helps it guess the format."""

    @model_validator(mode="after")
    def _one_source(self) -> TranscribeCommand:
        if (self.audio_base64 is None) == (self.audio_url is None):
            raise ValueError("give exactly one of audio_base64 and audio_url")
        return self


COMMAND_MODELS: dict[str, type[SynthesizeCommand] | type[TranscribeCommand]] = {
    "synthesize": SynthesizeCommand,
    "transcribe": TranscribeCommand,
}


def success(command: str, request_id: str | None, result: Any) -> dict[str, Any]:
    """A successful answer: the gateway's JSON under ``result``."""
    return {"id": request_id, "command": command, "ok": True, "result": result}


def failure(command: str, request_id: str | None, error: VoicestackError) -> dict[str, Any]:
    """A failed answer: the shared error shape and an HTTP-like status (the gateway's when it answered)."""
    status = error.status_code
    return {
        "id": request_id,
        "command": command,
        "ok": False,
        "status": status,
        **error_body(error.code, error.message, error.details),
    }
