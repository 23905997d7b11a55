"""The event contract between the gateway (producer) and the MQTT bridge (consumer).

The gateway ``POST``s one ``SpeechEvent`` per finished transcription,
synthesis, assistant reply or tool call to the bridge's ``/v1/events``; the
bridge answers ``202`` once the event is in its durable outbox and publishes it
to ``{prefix}/transcripts``, ``{prefix}/synthesis``, ``{prefix}/replies`` or
``{prefix}/tool_calls``. ``event_id`` is unique per event, so a retried POST or
a redelivered MQTT message can be dropped by id.

A ``PublishRequest`` to the bridge's ``/v1/publish`` asks it to publish one
message of the caller's choosing (an assistant's ``mqtt_publish`` tool), with
the same durability and the same ``event_id`` deduplication; the bridge's own
allow-list decides which topics it may go to.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

EVENTS_PATH = "/v1/events"
PUBLISH_PATH = "/v1/publish"
MAX_TEXT_CHARS = 100_000
EVENT_ID_PATTERN = r"^[A-Za-z0-9._:\-]+$"
EVENT_ID_MIN_LENGTH = 8
EVENT_ID_MAX_LENGTH = 64
MAX_TOPIC_CHARS = 256
MAX_PUBLISH_PAYLOAD_BYTES = 65_536
# Code points MQTT lets a broker treat as a malformed packet in a topic (mosquitto does, and drops
# the connection: one such message would stall the bridge's outbox behind it): NUL and the other
# controls, and Unicode noncharacters (those of the other planes are checked by their low bits).
_NOT_IN_TOPICS = re.compile("[\x00-\x1f\x7f-\x9f\ufdd0-\ufdef\ufffe\uffff]")
# The ``type`` of pydantic's error for an oversized payload: the bridge answers it with 413.
PAYLOAD_TOO_LARGE = "payload_too_large"


def new_event_id() -> str:
    """A fresh unique event id."""
    return uuid.uuid4().hex


def utc_now() -> datetime:
    """Timezone-aware now, for event timestamps."""
    return datetime.now(UTC)


class SpeechEvent(BaseModel):
    """One finished transcription, synthesis, assistant reply or tool call."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, use_attribute_docstrings=True)

    event_id: str = Field(
        default_factory=new_event_id,
        min_length=EVENT_ID_MIN_LENGTH,
        max_length=EVENT_ID_MAX_LENGTH,
        pattern=EVENT_ID_PATTERN,
    )
    """Unique per event; consumers drop repeats by it."""
    type: Literal["transcription", "synthesis", "reply", "tool_call"]
    request_id: str | None = Field(default=None, max_length=128)
    """The ``X-Request-ID`` of the request that produced it."""
    session_id: str | None = Field(default=None, max_length=128)
    """The WebSocket session (or client-supplied session), when known."""
    utterance_id: int | None = Field(default=None, ge=1)
    """Live transcription only: the utterance within ``session_id`` (one event per ``final``)."""
    text: str = Field(max_length=MAX_TEXT_CHARS)
    """The transcript, the synthesized text, the reply (as heard, when interrupted), or a tool call's
    result (its error message when it failed)."""
    language: str | None = Field(default=None, max_length=16)
    duration_seconds: float = Field(ge=0)
    """Seconds of audio transcribed or produced (a reply: seconds of its audio sent; a tool call:
    seconds the call ran)."""
    model: str | None = Field(default=None, max_length=128)
    voice: str | None = Field(default=None, max_length=256)
    """Synthesis only: the voice (or blend) used."""
    confidence: float | None = Field(default=None, ge=0, le=1)
    conversation_id: str | None = Field(default=None, max_length=64)
    """Reply and tool call: the conversation it belongs to."""
    message_id: str | None = Field(default=None, max_length=64)
    """Reply and tool call: the assistant message's id in the conversation store."""
    interrupted: bool | None = None
    """Reply only: whether the user cut it short (barge-in or cancel)."""
    tool: str | None = Field(default=None, max_length=64)
    """Tool call only: the tool's name."""
    call_id: str | None = Field(default=None, max_length=128)
    """Tool call only: the model's id of the call."""
    arguments: dict[str, Any] | None = None
    """Tool call only: the call's arguments, as the model wrote them."""
    status: str | None = Field(default=None, max_length=16)
    """Tool call only: ``ok``, ``error``, ``timeout``, ``cancelled`` or ``refused``."""
    error_code: str | None = Field(default=None, max_length=64)
    """Tool call only: why it failed or was refused (``topic_not_allowed``, ``tool_failed``, ...)."""
    started_at: AwareDatetime
    finished_at: AwareDatetime
    source: str = Field(default="gateway", max_length=64)
    """Which service produced it."""


class EventAccepted(BaseModel):
    """The bridge's ``202`` answer (to an event or a publish request)."""

    event_id: str
    duplicate: bool = False
    """True when this ``event_id`` was already accepted (nothing new was stored)."""


class PublishRequest(BaseModel):
    """``POST /v1/publish``: one MQTT message to publish, if the bridge's allow-list admits its topic."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    event_id: str = Field(min_length=EVENT_ID_MIN_LENGTH, max_length=EVENT_ID_MAX_LENGTH, pattern=EVENT_ID_PATTERN)
    """Unique per message, derived by the caller from what asked for it (a tool call), so a retried
    POST is dropped as a duplicate instead of published twice."""
    topic: str = Field(min_length=1, max_length=MAX_TOPIC_CHARS)
    """The topic to publish to: no ``+``/``#`` wildcards, no control characters (NUL included) or
    Unicode noncharacters, not starting with ``$``."""
    payload: str
    """The message, published as its UTF-8 bytes (at most ``MAX_PUBLISH_PAYLOAD_BYTES``)."""
    qos: Literal[0, 1] = 1
    """MQTT QoS of the publish."""
    retain: bool = False
    """Whether the broker keeps it as the topic's retained message."""

    @field_validator("topic")
    @classmethod
    def _publishable(cls, value: str) -> str:
        if any(c in value for c in "+#"):
            raise ValueError("a topic to publish to cannot hold the wildcards '+' or '#'")
        if _NOT_IN_TOPICS.search(value) or any(ord(c) > 0xFFFF and ord(c) & 0xFFFE == 0xFFFE for c in value):
            raise ValueError("a topic cannot hold control characters (NUL included) or Unicode noncharacters")
        if value.startswith("$"):
            raise ValueError("topics starting with '$' belong to the broker")
        _utf8(value)
        return value

    @field_validator("payload")
    @classmethod
    def _bounded(cls, value: str) -> str:
        # Characters under the cap can still be bytes over it: count what goes on the wire.
        if len(value) > MAX_PUBLISH_PAYLOAD_BYTES or len(_utf8(value)) > MAX_PUBLISH_PAYLOAD_BYTES:
            raise PydanticCustomError(
                PAYLOAD_TOO_LARGE,
                "the payload is over {limit} bytes in UTF-8",
                {"limit": MAX_PUBLISH_PAYLOAD_BYTES},
            )
        return value


def _utf8(value: str) -> bytes:
    """``value`` in UTF-8; JSON's ``\\ud800`` escapes can give lone surrogates, which have none."""
    try:
        return value.encode()
    except UnicodeEncodeError:
        raise ValueError("not valid Unicode (a lone surrogate)") from None
