"""The broker's documented error answers; its bodies are the shared contract (``voicestack_common.contracts.stt``)."""

from __future__ import annotations

from typing import Any

from voicestack_common.schemas import ErrorResponse

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Empty body, unreadable or truncated audio"},
    404: {"model": ErrorResponse, "description": "No model of that name in the catalog (`model_not_found`)"},
    413: {"model": ErrorResponse, "description": "Upload over the size limit (`payload_too_large`)"},
    415: {"model": ErrorResponse, "description": "Not multipart, or not audio (`unsupported_audio`)"},
    422: {
        "model": ErrorResponse,
        "description": "Invalid field: language (or one the named model cannot hear), response_format, "
        "temperature, audio too long",
    },
    503: {"model": ErrorResponse, "description": "Queue full (`saturated`, with Retry-After)"},
    504: {"model": ErrorResponse, "description": "Inference took longer than the timeout"},
}
