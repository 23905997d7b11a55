"""HTTP body models every service shares (for the OpenAPI docs)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    """A machine-readable code and a message for people."""

    code: str = Field(examples=["unsupported_audio"])
    message: str
    details: Any | None = None


class ErrorResponse(BaseModel):
    """Every error a voicestack service sends (upstream errors pass through in the same shape)."""

    error: ErrorDetail


class ModelCard(BaseModel):
    """One model name clients may send (OpenAI's model object, plus what a catalog tells).

    The extra fields are optional so that OpenAI's shape stays valid; routes that list models
    leave out the ones they do not know (``response_model_exclude_none``).
    """

    id: str
    object: str = "model"
    created: int
    owned_by: str
    kind: Literal["stt", "tts", "llm"] | None = Field(default=None, description="What the model does")
    loaded: bool | None = Field(default=None, description="Whether it is in memory now")
    default: bool | None = Field(default=None, description="Used when a request names no model")
    alias_of: str | None = Field(default=None, description="The model this name stands for (`whisper-1`)")
    languages: list[str] | None = Field(
        default=None, description="ISO 639-1 codes it hears or speaks; unset: not known"
    )


class ModelList(BaseModel):
    """``GET /v1/models``, as OpenAI answers it."""

    object: str = "list"
    data: list[ModelCard]


def error_responses(described: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for error statuses, each answered with ``ErrorResponse``."""
    return {status: {"model": ErrorResponse, "description": text} for status, text in described.items()}
