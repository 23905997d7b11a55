"""What a responder is: the conversation so far in, the reply out as a stream of text deltas.

Errors (all ``ResponderError``, each with a stable code the client sees)::

    ResponderError            responder_error
    ├── ResponderUnavailable  responder_unavailable   (cannot connect, 5xx, refused)
    ├── ResponderTimeout      responder_timeout       (no answer in time)
    └── ResponderInvalid      responder_invalid_response (an answer that is not the protocol)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from conversation.store import HistoryItem
from voicestack_common.errors import Saturated, UpstreamError, UpstreamTimeout, VoicestackError


class ResponderError(UpstreamError):
    """The responder failed; the user's message is kept."""

    default_code: ClassVar[str] = "responder_error"


class ResponderUnavailable(ResponderError):
    """The responder could not be reached or refused the request."""

    default_code: ClassVar[str] = "responder_unavailable"


class ResponderInvalid(ResponderError):
    """The responder answered something that is not its protocol."""

    default_code: ClassVar[str] = "responder_invalid_response"


class ResponderTimeout(UpstreamTimeout):
    """No answer in time."""

    default_code: ClassVar[str] = "responder_timeout"


RESPONDER_ERRORS: tuple[type[VoicestackError], ...] = (ResponderError, ResponderTimeout, Saturated)
"""What a reply may fail with, each told to the caller by its code (``saturated``: the local model's queue is full)."""


@dataclass(frozen=True, slots=True)
class ReplyRequest:
    """Everything a responder may use to answer."""

    conversation_id: str
    text: str
    """The user's new message."""
    history: list[HistoryItem]
    """Earlier messages, oldest first (the new one not included)."""
    user_id: str | None = None
    language: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    """Per-conversation options the server allowed (temperature, max_tokens, system_prompt, model)."""


class Responder(Protocol):
    """Turns a conversation into a reply, streamed as text deltas."""

    name: str

    async def start(self) -> None:
        """Load what the responder needs before the first reply (the local model); most need nothing."""
        ...

    def reply(self, request: ReplyRequest) -> AsyncIterator[str]:
        """The reply's text, piece by piece, as it is produced."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
