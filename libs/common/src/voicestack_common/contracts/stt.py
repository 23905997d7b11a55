"""What the STT broker answers, and the gateway reads and passes on."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


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

    model_config = ConfigDict(extra="allow")

    text: str = Field(examples=["Hello, how are you?"])
    language: str = Field(examples=["en"])
    confidence: float | None = Field(
        default=None, description="exp(mean token log-probability), 0..1; null for silence"
    )
    duration_seconds: float = Field(examples=[1.5])
    model: str = Field(examples=["tiny.en"])


class VerboseTranscribeResponse(TranscribeResponse):
    """``response_format=verbose_json``: the same plus the engine and segments (and words when asked)."""

    engine: str | None = None
    segments: list[SegmentOut] | None = None


class OpenAITranscription(BaseModel):
    """OpenAI's transcription object (``json``; ``verbose_json`` adds the optional fields)."""

    model_config = ConfigDict(extra="allow")

    text: str
    task: str | None = None
    language: str | None = None
    duration: float | None = None
    segments: list[SegmentOut] | None = None
    words: list[WordOut] | None = None
    usage: dict[str, Any] | None = None
