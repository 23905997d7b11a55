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
