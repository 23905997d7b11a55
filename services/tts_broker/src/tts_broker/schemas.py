"""The broker's documented error answers and its Kokoro-FastAPI voice list; the bodies it shares
with the gateway are the contract in ``voicestack_common.contracts.tts``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from voicestack_common.contracts.tts import SynthesizeRequest
from voicestack_common.schemas import ErrorResponse

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "No body or not JSON (`empty_body`, `invalid_json`)"},
    413: {"model": ErrorResponse, "description": "Body over the size limit (`payload_too_large`)"},
    415: {"model": ErrorResponse, "description": "Not JSON, or not UTF-8 (`invalid_encoding`)"},
    404: {"model": ErrorResponse, "description": "`model` is not in the catalog (`model_not_found`)"},
    422: {
        "model": ErrorResponse,
        "description": "`empty_text`, `text_too_long`, `unknown_voice`, "
        "`invalid_voice_blend`, `invalid_speed`, "
        "`unsupported_format`, `unsupported_lang_code`, "
        "`unsupported_language` (the voice's or the request's language has no text front end here)",
    },
    502: {"model": ErrorResponse, "description": "The remote Kokoro server failed"},
    503: {"model": ErrorResponse, "description": "Queue full (`saturated`, with Retry-After)"},
    504: {"model": ErrorResponse, "description": "Synthesis took longer than the timeout"},
}


class KokoroVoice(BaseModel):
    """One voice in Kokoro-FastAPI's list, with the language and gender its name tells."""

    id: str
    name: str
    lang_code: str | None = None
    language: str | None = None
    gender: str | None = None


class KokoroVoiceList(BaseModel):
    """Kokoro-FastAPI's ``GET /v1/audio/voices`` (``?legacy=true``: plain names)."""

    voices: list[KokoroVoice] | list[str]


class BrokerSynthesizeRequest(SynthesizeRequest):
    """The guide's synthesis request, plus the broker's optional ``model``."""

    model: str | None = Field(
        default=None,
        description="A catalog model (`GET /v1/models`) or an alias (`tts-1`, `kokoro`); unset: the default.",
        examples=["kokoro-82m-int8"],
    )
