"""HTTP body models (for validation and the OpenAPI docs); engine types live in engines.base."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from voicestack_common.schemas import ErrorResponse

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Empty body, unreadable or truncated audio"},
    413: {"model": ErrorResponse, "description": "Upload over the size limit (`payload_too_large`)"},
    415: {"model": ErrorResponse, "description": "Not multipart, or not audio (`unsupported_audio`)"},
    422: {
        "model": ErrorResponse,
        "description": "Invalid field: language, response_format, temperature, audio too long",
    },
    503: {"model": ErrorResponse, "description": "Queue full (`saturated`, with Retry-After)"},
    504: {"model": ErrorResponse, "description": "Inference took longer than the timeout"},
}


class WordOut(BaseModel):
    """A timed word."""

    word: str
    start: float
    end: float
    probability: float


class SegmentOut(BaseModel):
    """A decoded segment, as OpenAI's verbose_json writes it."""

    id: int
    seek: int = 0
    start: float
    end: float
    text: str
    tokens: list[int]
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float
    words: list[WordOut] | None = None


class TranscribeResponse(BaseModel):
    """The integration guide's transcription result."""

    text: str = Field(examples=["Hello, how are you?"])
    language: str = Field(examples=["en"])
    confidence: float | None = Field(description="exp(mean token log-probability), 0..1; null for silence")
    duration_seconds: float = Field(examples=[1.5])
    model: str = Field(examples=["tiny.en"])


class VerboseTranscribeResponse(TranscribeResponse):
    """``response_format=verbose_json``: the same plus segments (and words when asked)."""

    engine: str | None = None
    segments: list[SegmentOut] | None = None


class OpenAITranscription(BaseModel):
    """OpenAI's transcription object (``json``; ``verbose_json`` adds the optional fields)."""

    text: str
    task: str | None = None
    language: str | None = None
    duration: float | None = None
    segments: list[SegmentOut] | None = None
    words: list[WordOut] | None = None
    usage: dict[str, Any] | None = None
