"""What a responder is: the conversation so far in, the reply out as a stream of text deltas (and, from
responders that offer tools to their model, the tool calls it makes: ``ToolCallRequest``).

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

from conversation.store import HistoryItem, ToolUse
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
    tools: list[dict[str, Any]] = field(default_factory=list)
    """Tools the model may call, in OpenAI's Chat Completions form (responders without tools ignore them)."""
    tool_choice: Any = "auto"
    """OpenAI's ``tool_choice``: ``auto``, ``none``, ``required`` or ``{"type": "function", ...}``."""
    steps: list[HistoryItem] = field(default_factory=list)
    """This reply so far, after the user's message: assistant messages with tool calls and their results."""

    def chat(self, system: str | None) -> list[dict[str, Any]]:
        """The conversation as OpenAI chat messages: ``system``, the history, the new message, the steps."""
        messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
        for item in self.history:
            messages += chat_messages(item)
        if self.text:
            messages.append({"role": "user", "content": self.text})
        for item in self.steps:
            messages += chat_messages(item)
        return messages


@dataclass(frozen=True, slots=True)
class ToolCallRequest:
    """The model calls a tool (a responder yields these after the text of its round)."""

    call_id: str
    name: str
    arguments: str
    """JSON text, as the model wrote it."""


def chat_messages(item: HistoryItem) -> list[dict[str, Any]]:
    """One stored message as chat messages: an assistant's tool calls become ``tool_calls`` and
    ``tool`` messages with their results."""
    if not item.tool_calls:
        return [{"role": item.role, "content": item.text}]
    calls = [
        {"id": c.call_id, "type": "function", "function": {"name": c.name, "arguments": c.arguments or "{}"}}
        for c in item.tool_calls
    ]
    messages: list[dict[str, Any]] = [{"role": "assistant", "content": item.text, "tool_calls": calls}]
    messages += [{"role": "tool", "tool_call_id": c.call_id, "content": _told(c)} for c in item.tool_calls]
    return messages


def _told(call: ToolUse) -> str:
    """What the model is told of a call: its result, or ``error: ...``."""
    if call.result is None:
        return "error: the call did not finish"
    return call.result if call.ok else f"error: {call.result}"


class Responder(Protocol):
    """Turns a conversation into a reply, streamed as text deltas."""

    name: str

    async def start(self) -> None:
        """Load what the responder needs before the first reply (the local model); most need nothing."""
        ...

    def reply(self, request: ReplyRequest) -> AsyncIterator[str | ToolCallRequest]:
        """The reply's text, piece by piece, as it is produced; then the tools the model calls, if any."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
