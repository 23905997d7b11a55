"""The conversation service's wire contract: what the gateway sends it and reads back, defined once.

    POST /v1/conversations                 ConversationCreate → ConversationOut
    GET  /v1/conversations[/{id}]          ConversationList, ConversationDetail
    POST /v1/conversations/{id}/turns      TurnRequest → server-sent TurnStarted, TurnDelta | TurnToolCall
                                           | TurnToolResult ..., TurnDone | TurnFailed
    POST .../messages/{id}/interrupt       Interrupt → MessageOut
    GET  /v1/responders                    RespondersOut (``check_choice`` applies it, on both sides)
    /v1/deliveries/{session}               seed 000's pending reply audio (DeliveryBegin, DeliveryPieceIn, ...)

Every call names its owner in ``OWNER_HEADER`` (the gateway passes the API key's identity).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from voicestack_common.errors import InvalidRequest
from voicestack_common.schemas import ErrorDetail, ModelCard
from voicestack_common.streaming import ServerSentEvent, sse_event

OWNER_HEADER = "X-Voicestack-Owner"
"""Whose conversations a call acts on."""
ANONYMOUS_OWNER = "anonymous"
"""Without API keys every caller is this one owner: the conversations are the stack's, not a device's."""
OWNER_PATTERN = r"^[A-Za-z0-9._:\-]{1,64}$"

ID_PATTERN = OWNER_PATTERN
"""Conversation, message and device ids."""
TOOL_NAME_PATTERN = r"^[A-Za-z0-9_\-]{1,64}$"
"""A tool's name, as OpenAI's function names are written."""


class ConversationCreate(BaseModel):
    """``POST /v1/conversations``."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, pattern=ID_PATTERN)
    """Choose the id (e.g. seed 001's ``conversation_uuid``); a new one is made otherwise."""
    user_id: str | None = Field(default=None, max_length=128)
    title: str | None = Field(default=None, max_length=256)


class ToolCallOut(BaseModel):
    """One call the model made to a tool, and how it ended.

    ``kind``: ``server`` (a tool of the service's tools file, run by the service) or ``client`` (a tool
    the caller declared in the turn, e.g. a Realtime session's: the caller runs it and sends the output
    in a later turn's ``tool_outputs``). ``status``: ``running``; ``ok``, ``error``, ``timeout``,
    ``refused`` (a topic, URL or tool the tools file does not name), ``cancelled`` (the user barged in);
    ``pending`` (a client tool waiting for its output)."""

    model_config = ConfigDict(extra="allow", from_attributes=True)

    call_id: str
    name: str
    arguments: str
    """The arguments as the model wrote them (JSON text)."""
    kind: Literal["server", "client"] = "server"
    status: str
    result: str | None = None
    """What the model was told: the tool's result, its output, or why it failed (capped)."""
    error_code: str | None = None
    created_at: datetime | None = None
    completed_at: datetime | None = None


class MessageOut(BaseModel):
    """One message."""

    model_config = ConfigDict(extra="allow", from_attributes=True)

    id: str
    role: Literal["user", "assistant"]
    text: str
    """For an interrupted reply: what the user heard of it."""
    status: str
    """``complete``, ``streaming``, ``interrupted``, ``truncated`` or ``error``."""
    created_at: datetime
    completed_at: datetime | None = None
    transcript: dict[str, Any] | None = None
    """User messages that were spoken: the transcription's language, confidence, duration, model."""
    responder: str | None = None
    interrupted: bool = False
    heard_text: str | None = None
    generated_text: str | None = None
    """Assistant messages: the whole text the responder produced (more than was heard, when interrupted)."""
    error_code: str | None = None
    tool_calls: list[ToolCallOut] = Field(default_factory=list)
    """Assistant messages: the tools the model called while writing it, in order."""


class ConversationOut(BaseModel):
    """A conversation, without its messages."""

    model_config = ConfigDict(extra="allow", from_attributes=True)

    id: str
    user_id: str | None = None
    title: str | None = None
    created_at: datetime
    updated_at: datetime


class ConversationDetail(ConversationOut):
    """A conversation with its messages in order."""

    messages: list[MessageOut]


class ConversationList(BaseModel):
    """``GET /v1/conversations``."""

    conversations: list[ConversationOut]
    total: int
    limit: int
    offset: int


class ResponderChoice(BaseModel):
    """Which responder answers a turn, with the options the server allows clients to set.

    The options hold for this turn only; each turn names its own (``GET /v1/responders`` lists the
    allowed ones and their bounds; others are a 422 ``option_not_allowed`` or ``invalid_option``)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=32)
    """A responder the server allows (``GET /v1/responders``); unset: the server's default."""
    options: dict[str, Any] = Field(default_factory=dict)
    """``temperature``, ``max_tokens``, ``system_prompt`` (replaces the responder's instructions), ``model``:
    only those the server allows. The ``openai`` responder sends them in its request, the ``webhook``
    responder forwards them as ``options``."""


class ToolSpec(BaseModel):
    """A function the caller lets the model call (OpenAI's Realtime form: ``name`` at the top level).

    The service does not run it: a call ends the turn with a ``pending`` tool call, and the caller
    sends its output in the next turn's ``tool_outputs``."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["function"] = "function"
    name: str = Field(pattern=TOOL_NAME_PATTERN)
    description: str = Field(default="", max_length=4000)
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    """The arguments' JSON schema."""


class ToolOutput(BaseModel):
    """The output of a client tool the model called in an earlier turn (``ToolCallOut.call_id``)."""

    model_config = ConfigDict(extra="forbid")

    call_id: str = Field(min_length=1, max_length=128)
    output: str = Field(max_length=100_000)


ToolChoice = Literal["auto", "none", "required"]


class TurnRequest(BaseModel):
    """``POST /v1/conversations/{id}/turns``: the user's message; the reply streams back as SSE.

    A turn carries the user's ``text``, or the ``tool_outputs`` of client tools the previous reply
    called, or both."""

    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(default=None, min_length=1)
    user_id: str | None = Field(default=None, max_length=128)
    language: str | None = Field(default=None, max_length=16)
    transcript: dict[str, Any] | None = None
    """Transcription metadata kept with the user message."""
    responder: ResponderChoice = Field(default_factory=ResponderChoice)
    create: bool = True
    """Create the conversation on first use (else an unknown id is a 404)."""
    tools: list[ToolSpec] = Field(default_factory=list, max_length=128)
    """Client tools the model may call in this turn, beside the service's own (its tools file)."""
    tool_choice: ToolChoice | str = "auto"
    """``auto``, ``none`` (no tool at all), ``required``, or one tool's name."""
    tool_outputs: list[ToolOutput] = Field(default_factory=list, max_length=128)

    @model_validator(mode="after")
    def _something(self) -> TurnRequest:
        if self.text is None and not self.tool_outputs:
            raise ValueError("a turn needs 'text' or 'tool_outputs'")
        return self


class Interrupt(BaseModel):
    """``POST /v1/conversations/{id}/messages/{message_id}/interrupt``."""

    model_config = ConfigDict(extra="forbid")

    heard_text: str = Field(max_length=1_000_000)
    """What the user heard before interrupting; it becomes the message's text."""


class OptionLimit(BaseModel):
    """What values one option takes."""

    type: Literal["number", "integer", "string"]
    min: float
    max: float

    def admits(self, value: Any) -> bool:
        """Whether ``value`` has this type and lies within the bounds (a string's length does)."""
        if isinstance(value, bool):
            return False
        if self.type == "string":
            return isinstance(value, str) and self.min <= len(value) <= self.max
        kind = int if self.type == "integer" else int | float
        return isinstance(value, kind) and self.min <= value <= self.max

    def describe(self) -> str:
        """``a number within [0, 2]``, as an error message says it."""
        what = {"string": "a string of length", "integer": "an integer", "number": "a number"}[self.type]
        return f"{what} within [{self.min:g}, {self.max:g}]"


class RespondersOut(BaseModel):
    """``GET /v1/responders``."""

    default: str
    allowed: list[str]
    options: list[str]
    """Options a client may set."""
    limits: dict[str, OptionLimit]
    """The bounds of each option a client may set (a string's are on its length)."""
    models: list[ModelCard] | None = None
    """The responders as ``GET /v1/models`` cards, when the service describes them (else made from ``allowed``)."""


class DeliveryBegin(BaseModel):
    """``PUT /v1/deliveries/{session}``: a device's new reply (its earlier one is dropped)."""

    model_config = ConfigDict(extra="forbid")

    ttl: float = Field(default=300.0, gt=0, le=86_400)
    """Seconds the delivery is kept without a write or a fetch."""
    conversation_id: str | None = Field(default=None, pattern=ID_PATTERN)


class DeliveryTurn(BaseModel):
    """The delivery's turn id: writes name it, so a replaced delivery is not written to."""

    turn: str


class DeliveryPieceIn(BaseModel):
    """``POST /v1/deliveries/{session}/pieces``: one spoken piece."""

    model_config = ConfigDict(extra="forbid")

    turn: str = Field(max_length=32)
    index: int = Field(ge=0)
    text: str = Field(max_length=100_000)
    format: Literal["wav", "pcm", "mp3", "opus", "flac"]
    sample_rate: int = Field(ge=1, le=192_000)
    audio_base64: str
    """The piece's audio file, base64."""


class DeliveryError(BaseModel):
    """Why the reply failed."""

    code: str = Field(max_length=64)
    message: str = Field(max_length=10_000)


class DeliveryDone(BaseModel):
    """``POST /v1/deliveries/{session}/done``: no more pieces come."""

    model_config = ConfigDict(extra="forbid")

    turn: str = Field(max_length=32)
    error: DeliveryError | None = None


class DeliveryNext(BaseModel):
    """``POST /v1/deliveries/{session}/take``: the next piece (deleted as taken) or the delivery's state.

    ``piece``; ``pending`` (nothing within the wait); ``done`` (all delivered; the delivery is gone);
    ``failed`` (the reply failed before any audio; ``error``); ``none`` (no delivery for the device)."""

    state: Literal["piece", "pending", "done", "failed", "none"]
    index: int | None = None
    text: str | None = None
    format: str | None = None
    sample_rate: int | None = None
    audio_base64: str | None = None
    error: DeliveryError | None = None


OPTION_LIMITS: dict[str, OptionLimit] = {
    "temperature": OptionLimit(type="number", min=0, max=2),
    "max_tokens": OptionLimit(type="integer", min=1, max=32_768),
    "system_prompt": OptionLimit(type="string", min=0, max=4000),
    "model": OptionLimit(type="string", min=1, max=128),
}
"""Every option a server may let clients set, with its type and bounds."""


def offered(default: str, allowed: list[str], options: list[str]) -> RespondersOut:
    """What a server with these settings lets clients choose (``GET /v1/responders``)."""
    limits = {name: OPTION_LIMITS[name] for name in options}
    return RespondersOut(default=default, allowed=allowed, options=options, limits=limits)


def check_choice(choice: ResponderChoice, responders: RespondersOut) -> str:
    """The responder that answers, after checking the choice against what is offered (422 otherwise:
    ``responder_not_allowed``, ``option_not_allowed``, ``invalid_option`` with ``details.option``)."""
    name = choice.name or responders.default
    if name not in responders.allowed:
        raise InvalidRequest(
            f"responder {name!r} is not allowed here; allowed: {', '.join(responders.allowed)}",
            code="responder_not_allowed",
            details={"allowed": responders.allowed},
        )
    for key, value in choice.options.items():
        if key not in responders.options:
            raise InvalidRequest(
                f"option {key!r} is not allowed here; allowed: {', '.join(responders.options) or 'none'}",
                code="option_not_allowed",
                details={"option": key, "allowed": responders.options},
            )
        limit = responders.limits.get(key)
        if limit is not None and not limit.admits(value):
            raise InvalidRequest(
                f"option {key!r} must be {limit.describe()}",
                code="invalid_option",
                details={"option": key, "min": limit.min, "max": limit.max},
            )
    return name


# A turn's reply, streamed as server-sent events named by each model's ``event``.


class TurnStarted(BaseModel):
    """``event: turn``: the user's message is stored; the reply will be stored as ``assistant_message_id``.

    ``user_message`` is ``None`` for a turn that carries only ``tool_outputs``."""

    event: ClassVar[str] = "turn"
    model_config = ConfigDict(extra="allow")

    user_message: MessageOut | None
    assistant_message_id: str


class TurnDelta(BaseModel):
    """``event: delta``: more of the reply's text, as the responder produces it."""

    event: ClassVar[str] = "delta"
    model_config = ConfigDict(extra="allow")

    text: str


class TurnToolCall(BaseModel):
    """``event: tool_call``: the model called a tool (``running`` on the service, or ``pending``: a client
    tool, whose output the caller sends in the next turn; the reply ends after it)."""

    event: ClassVar[str] = "tool_call"
    model_config = ConfigDict(extra="allow")

    call: ToolCallOut


class TurnToolResult(BaseModel):
    """``event: tool_result``: a service tool's call ended (``call.status``); the model goes on with its result."""

    event: ClassVar[str] = "tool_result"
    model_config = ConfigDict(extra="allow")

    call: ToolCallOut
    replayed: bool = False
    """The call had run before (a retried request): this is its stored result; it did not run again."""
    seconds: float = 0.0


class TurnDone(BaseModel):
    """``event: done``: the stored reply."""

    event: ClassVar[str] = "done"
    model_config = ConfigDict(extra="allow")

    message: MessageOut
    truncated: bool = False
    reason: str | None = None
    """Why a truncated reply stopped: ``length_limit`` or ``time_limit``."""


class TurnFailed(BaseModel):
    """``event: error``: the responder failed; the user's message stays stored."""

    event: ClassVar[str] = "error"
    model_config = ConfigDict(extra="allow")

    error: ErrorDetail
    user_message_id: str | None = None


TurnEvent = TurnStarted | TurnDelta | TurnToolCall | TurnToolResult | TurnDone | TurnFailed
_TURN_EVENTS: dict[str, type[TurnEvent]] = {
    cls.event: cls for cls in (TurnStarted, TurnDelta, TurnToolCall, TurnToolResult, TurnDone, TurnFailed)
}


def encode_turn_event(event: TurnEvent) -> bytes:
    """One event of a turn's stream, as the service sends it."""
    return sse_event(event.model_dump(mode="json", exclude_none=False), event=event.event)


def decode_turn_event(sse: ServerSentEvent) -> TurnEvent | None:
    """A received event as its model (``None``: an event this side does not know, which it may skip);
    ``ValueError`` when a known event's data does not fit it."""
    model = _TURN_EVENTS.get(sse.event)
    if model is None:
        return None
    try:
        return model.model_validate_json(sse.data)
    except ValidationError as exc:
        raise ValueError(f"{sse.event} event: {exc.errors()[0]['msg']}") from None
