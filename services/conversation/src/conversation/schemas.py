"""HTTP bodies of the conversation service (the gateway relays the public ones unchanged)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from conversation.models import Conversation, Message

ID_PATTERN = r"^[A-Za-z0-9._:\-]{1,64}$"


class ConversationCreate(BaseModel):
    """``POST /v1/conversations``."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, pattern=ID_PATTERN)
    """Choose the id (e.g. seed 001's ``conversation_uuid``); a new one is made otherwise."""
    user_id: str | None = Field(default=None, max_length=128)
    title: str | None = Field(default=None, max_length=256)


class MessageOut(BaseModel):
    """One message."""

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

    @classmethod
    def of(cls, row: Message) -> MessageOut:
        """From a row."""
        return cls.model_validate(row, from_attributes=True)


class ConversationOut(BaseModel):
    """A conversation, without its messages."""

    id: str
    user_id: str | None = None
    title: str | None = None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Conversation) -> ConversationOut:
        """From a row."""
        return cls.model_validate(row, from_attributes=True)


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


class TurnRequest(BaseModel):
    """``POST /v1/conversations/{id}/turns``: the user's message; the reply streams back as SSE."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1)
    user_id: str | None = Field(default=None, max_length=128)
    language: str | None = Field(default=None, max_length=16)
    transcript: dict[str, Any] | None = None
    """Transcription metadata kept with the user message."""
    responder: ResponderChoice = Field(default_factory=ResponderChoice)
    create: bool = True
    """Create the conversation on first use (else an unknown id is a 404)."""


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


class RespondersOut(BaseModel):
    """``GET /v1/responders``."""

    default: str
    allowed: list[str]
    options: list[str]
    """Options a client may set."""
    limits: dict[str, OptionLimit]
    """The bounds of each option a client may set (a string's are on its length)."""


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
