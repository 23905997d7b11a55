"""The event contract between the gateway (producer) and the MQTT bridge (consumer).

The gateway ``POST``s one ``SpeechEvent`` per finished transcription,
synthesis or assistant reply to the bridge's ``/v1/events``; the bridge answers
``202`` once the event is in its durable outbox and publishes it to
``{prefix}/transcripts``, ``{prefix}/synthesis`` or ``{prefix}/replies``. ``event_id`` is unique per
event, so a retried POST or a redelivered MQTT message can be dropped by id.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

EVENTS_PATH = "/v1/events"
MAX_TEXT_CHARS = 100_000


def new_event_id() -> str:
    """A fresh unique event id."""
    return uuid.uuid4().hex


def utc_now() -> datetime:
    """Timezone-aware now, for event timestamps."""
    return datetime.now(UTC)


class SpeechEvent(BaseModel):
    """One finished transcription, synthesis or assistant reply."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, use_attribute_docstrings=True)

    event_id: str = Field(default_factory=new_event_id, min_length=8, max_length=64, pattern=r"^[A-Za-z0-9._:\-]+$")
    """Unique per event; consumers drop repeats by it."""
    type: Literal["transcription", "synthesis", "reply"]
    request_id: str | None = Field(default=None, max_length=128)
    """The ``X-Request-ID`` of the request that produced it."""
    session_id: str | None = Field(default=None, max_length=128)
    """The WebSocket session (or client-supplied session), when known."""
    utterance_id: int | None = Field(default=None, ge=1)
    """Live transcription only: the utterance within ``session_id`` (one event per ``final``)."""
    text: str = Field(max_length=MAX_TEXT_CHARS)
    """The transcript, the synthesized text, or the reply (as heard, when interrupted)."""
    language: str | None = Field(default=None, max_length=16)
    duration_seconds: float = Field(ge=0)
    """Seconds of audio transcribed or produced (a reply: seconds of its audio sent)."""
    model: str | None = Field(default=None, max_length=128)
    voice: str | None = Field(default=None, max_length=256)
    """Synthesis only: the voice (or blend) used."""
    confidence: float | None = Field(default=None, ge=0, le=1)
    conversation_id: str | None = Field(default=None, max_length=64)
    """Reply only: the conversation it belongs to."""
    message_id: str | None = Field(default=None, max_length=64)
    """Reply only: the assistant message's id in the conversation store."""
    interrupted: bool | None = None
    """Reply only: whether the user cut it short (barge-in or cancel)."""
    started_at: AwareDatetime
    finished_at: AwareDatetime
    source: str = Field(default="gateway", max_length=64)
    """Which service produced it."""


class EventAccepted(BaseModel):
    """The bridge's ``202`` answer."""

    event_id: str
    duplicate: bool = False
    """True when this ``event_id`` was already accepted (nothing new was stored)."""
