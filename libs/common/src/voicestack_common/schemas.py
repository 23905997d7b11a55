"""HTTP body models every service shares (for the OpenAPI docs)."""

from __future__ import annotations

from typing import Any

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
    """One model name clients may send (OpenAI's model object)."""

    id: str
    object: str = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    """``GET /v1/models``, as OpenAI answers it."""

    object: str = "list"
    data: list[ModelCard]


def error_responses(described: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for error statuses, each answered with ``ErrorResponse``."""
    return {status: {"model": ErrorResponse, "description": text} for status, text in described.items()}
