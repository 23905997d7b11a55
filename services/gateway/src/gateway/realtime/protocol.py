"""The Realtime wire format: client events as strict models, server events as plain dicts.

Client models forbid unknown fields, so a field we do not support is an ``error`` event naming it
(``param``), never silently ignored. Server events follow OpenAI's beta Realtime API (``OpenAI-Beta:
realtime=v1``), the shape the ``openai`` SDK's ``beta.realtime`` types describe.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter

from gateway.realtime.codecs import RealtimeFormat
from voicestack_common.contracts.conversation import ToolSpec
from voicestack_common.errors import ClientError


def new_id(prefix: str) -> str:
    """An id in OpenAI's style (``event_…``, ``item_…``, ``resp_…``)."""
    return f"{prefix}_{uuid.uuid4().hex[:22]}"


def _max_tokens(value: int | str) -> int | str:
    if isinstance(value, int) and not 1 <= value <= 4096:
        raise ValueError("must be 'inf' or an integer from 1 to 4096")
    return value


# OpenAI's bounds on ``max_response_output_tokens``.
MaxTokens = Annotated[int | Literal["inf"], AfterValidator(_max_tokens)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class TurnDetection(_Strict):
    """``server_vad``: the live core's Silero VAD ends a turn on silence (``silence_duration_ms``).
    ``semantic_vad``: an end-of-turn model hears at each short pause whether the speaker has finished
    (the live core's Smart Turn; ``eagerness`` is taken, the wait for an unfinished turn is the STT
    broker's ``STT_LIVE_TURN_MAX_SILENCE_MS``)."""

    type: Literal["server_vad", "semantic_vad"] = "server_vad"
    eagerness: Literal["low", "medium", "high", "auto"] | None = None
    threshold: float | None = Field(default=None, gt=0, lt=1)
    prefix_padding_ms: int | None = Field(default=None, ge=0, le=2_000)
    silence_duration_ms: int | None = Field(default=None, ge=100, le=10_000)
    create_response: bool | None = None
    interrupt_response: bool | None = None


class InputAudioTranscription(_Strict):
    """Transcription of input audio (whisper.cpp here): ``model`` picks one of the STT broker's models;
    OpenAI's names (``whisper-1``, ``gpt-4o-transcribe``, ...) mean its default."""

    model: str | None = Field(default=None, max_length=64)
    language: str | None = Field(default=None, max_length=16)
    prompt: str | None = Field(default=None, max_length=1000)


class NoiseReduction(_Strict):
    type: Literal["near_field", "far_field"] | None = None


class SessionUpdate(_Strict):
    """The fields of ``session.update`` (and ``transcription_session.update``) a client may set."""

    model: str | None = Field(default=None, max_length=64)
    modalities: list[Literal["text", "audio"]] | None = None
    instructions: str | None = Field(default=None, max_length=20_000)
    voice: str | None = Field(default=None, max_length=64)
    speed: float | None = Field(default=None, ge=0.25, le=1.5)
    input_audio_format: RealtimeFormat | None = None
    output_audio_format: RealtimeFormat | None = None
    input_audio_transcription: InputAudioTranscription | None = None
    input_audio_noise_reduction: NoiseReduction | None = None
    turn_detection: TurnDetection | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_response_output_tokens: MaxTokens | None = None
    tools: list[ToolSpec] | None = Field(default=None, max_length=128)
    """Function tools, in the Realtime form the conversation contract also takes (``ToolSpec``)."""
    tool_choice: Any = None
    """A keyword, a tool's name or ``{"type": "function", "name": ...}``: checked by ``realtime.tools``."""
    include: list[str] | None = None


class _Client(_Strict):
    event_id: str | None = Field(default=None, max_length=128)


class SessionUpdateEvent(_Client):
    type: Literal["session.update", "transcription_session.update"]
    session: SessionUpdate


class AppendEvent(_Client):
    type: Literal["input_audio_buffer.append"]
    audio: str


class CommitEvent(_Client):
    type: Literal["input_audio_buffer.commit"]


class ClearEvent(_Client):
    type: Literal["input_audio_buffer.clear"]


class ContentPart(_Strict):
    type: Literal["input_text", "input_audio", "text", "audio", "item_reference"]
    text: str | None = None
    audio: str | None = None
    transcript: str | None = None
    id: str | None = None


class ItemInput(_Strict):
    id: str | None = Field(default=None, max_length=64)
    type: Literal["message", "function_call", "function_call_output"] = "message"
    object: Literal["realtime.item"] | None = None
    status: Literal["completed", "incomplete", "in_progress"] | None = None
    role: Literal["user", "assistant", "system"] | None = None
    content: list[ContentPart] = Field(default_factory=list)
    call_id: str | None = Field(default=None, min_length=1, max_length=128)
    name: str | None = Field(default=None, max_length=64)
    arguments: str | None = None
    output: str | None = Field(default=None, max_length=100_000)


class ItemCreateEvent(_Client):
    type: Literal["conversation.item.create"]
    previous_item_id: str | None = None
    item: ItemInput


class ItemTruncateEvent(_Client):
    type: Literal["conversation.item.truncate"]
    item_id: str
    content_index: int = Field(ge=0)
    audio_end_ms: int = Field(ge=0)


class ItemDeleteEvent(_Client):
    type: Literal["conversation.item.delete"]
    item_id: str


class ItemRetrieveEvent(_Client):
    type: Literal["conversation.item.retrieve"]
    item_id: str


class ResponseOptions(_Strict):
    modalities: list[Literal["text", "audio"]] | None = None
    instructions: str | None = Field(default=None, max_length=20_000)
    voice: str | None = Field(default=None, max_length=64)
    output_audio_format: RealtimeFormat | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_response_output_tokens: MaxTokens | None = None
    conversation: Literal["auto", "none"] | None = None
    metadata: dict[str, str] | None = None
    tools: list[ToolSpec] | None = Field(default=None, max_length=128)
    """Function tools, in the Realtime form the conversation contract also takes (``ToolSpec``)."""
    tool_choice: Any = None
    """A keyword, a tool's name or ``{"type": "function", "name": ...}``: checked by ``realtime.tools``."""
    input: list[ItemInput] | None = None


class ResponseCreateEvent(_Client):
    type: Literal["response.create"]
    response: ResponseOptions | None = None


class ResponseCancelEvent(_Client):
    type: Literal["response.cancel"]
    response_id: str | None = None


ClientEvent = Annotated[
    SessionUpdateEvent
    | AppendEvent
    | CommitEvent
    | ClearEvent
    | ItemCreateEvent
    | ItemTruncateEvent
    | ItemDeleteEvent
    | ItemRetrieveEvent
    | ResponseCreateEvent
    | ResponseCancelEvent,
    Field(discriminator="type"),
]
client_event: TypeAdapter[Any] = TypeAdapter(ClientEvent)
CLIENT_EVENTS = frozenset(
    {
        "session.update",
        "transcription_session.update",
        "input_audio_buffer.append",
        "input_audio_buffer.commit",
        "input_audio_buffer.clear",
        "conversation.item.create",
        "conversation.item.truncate",
        "conversation.item.delete",
        "conversation.item.retrieve",
        "response.create",
        "response.cancel",
    }
)
# OpenAI's events this face knows and refuses (WebRTC/SIP-only ones).
UNSUPPORTED_EVENTS = frozenset({"output_audio_buffer.clear"})


class RealtimeError(ClientError):
    """A client event that cannot be served; becomes an ``error`` event, the socket stays open
    (refusing a session, it closes with 1008)."""

    default_code = "invalid_value"

    def __init__(
        self,
        message: str,
        *,
        code: str = "invalid_value",
        param: str | None = None,
        kind: str = "invalid_request_error",
    ) -> None:
        super().__init__(message, code=code)
        self.param = param
        self.kind = kind


def error_event(error: RealtimeError, client_event_id: str | None) -> dict[str, Any]:
    """OpenAI's ``error`` event: the offending client event's id in ``error.event_id``."""
    return {
        "type": "error",
        "error": {
            "type": error.kind,
            "code": error.code,
            "message": error.message,
            "param": error.param,
            "event_id": client_event_id,
        },
    }


def validation_error(problems: list[dict[str, Any]]) -> RealtimeError:
    """The first pydantic problem as OpenAI names it (``unknown_parameter`` for extra fields)."""
    first = problems[0]
    loc = ".".join(str(p) for p in first["loc"] if not isinstance(p, int) or True)
    if first["type"] == "extra_forbidden":
        return RealtimeError(f"Unknown parameter: '{loc}'.", code="unknown_parameter", param=loc)
    if first["type"] == "missing":
        return RealtimeError(f"Missing required parameter: '{loc}'.", code="missing_required_parameter", param=loc)
    return RealtimeError(f"Invalid value for '{loc}': {first['msg']}.", code="invalid_value", param=loc)


def stt_model(name: str | None) -> str | None:
    """The STT broker's model for a session's ``input_audio_transcription.model``: OpenAI's names
    (``whisper-1``, ``gpt-4o-transcribe``, ``gpt-4o-mini-transcribe``) leave the broker's default."""
    if not name or name == "whisper-1" or name.startswith("gpt-"):
        return None
    return name
