"""What a response needs from the voice loop: reply text as it is written, its speech as it is synthesized.

The face drives a ``Replier`` and never splits sentences, calls a responder or a TTS broker itself.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from voicestack_common.contracts.conversation import ToolOutput, ToolSpec

# The Realtime names of the responder options a response may carry, by the conversation service's name.
OPTION_PARAMS = {
    "system_prompt": "instructions",
    "temperature": "temperature",
    "max_tokens": "max_response_output_tokens",
}


def responder_options(
    instructions: str | None, temperature: float | None, max_tokens: int | Literal["inf"] | None
) -> dict[str, Any]:
    """The conversation service's turn options for what a client set (unset or ``inf``: the server's own)."""
    options: dict[str, Any] = {}
    if instructions:
        options["system_prompt"] = instructions
    if temperature is not None:
        options["temperature"] = temperature
    if max_tokens is not None and max_tokens != "inf":
        options["max_tokens"] = int(max_tokens)
    return options


@dataclass(frozen=True, slots=True)
class Turn:
    """One message of the conversation so far, as the responder sees it (a call the model made to a
    client's tool is an assistant turn without text)."""

    role: Literal["user", "assistant", "system"]
    text: str
    item_id: str | None = None
    """The session item it comes from."""
    language: str | None = None
    """The language it was spoken in (user audio)."""


@dataclass(frozen=True, slots=True)
class ReplyRequest:
    """One response: the conversation so far, how to answer and whether to speak.

    ``instructions``, ``max_tokens`` and ``temperature`` are set only when the client set them."""

    history: list[Turn]
    item_id: str | None = None
    """The response's output item."""
    instructions: str | None = None
    voice: str | None = None
    speed: float | None = None
    audio: bool = True
    max_tokens: int | None = None
    temperature: float | None = None
    language: str | None = None
    """The language the user last spoke in: the reply is read in it, by a voice of it unless
    ``voice_fixed`` (``voice`` is then only the default); unset: ``voice`` as it is."""
    voice_fixed: bool = False
    tools: list[ToolSpec] = field(default_factory=list)
    """The client's functions the model may call."""
    tool_choice: str = "auto"
    """``auto``, ``none``, ``required`` or the name of the tool to call."""
    tool_outputs: list[ToolOutput] = field(default_factory=list)
    """The outputs of the model's earlier calls that the responder has not had yet."""


@dataclass(frozen=True, slots=True)
class ReplyText:
    """A delta of the reply's text, as the responder writes it."""

    text: str


@dataclass(frozen=True, slots=True)
class ReplyAudio:
    """The speech of one piece of the reply (``text``): PCM16, mono, ``sample_rate``."""

    text: str
    pcm16: bytes
    sample_rate: int


@dataclass(frozen=True, slots=True)
class ReplyToolCall:
    """The model called one of the client's tools (``arguments``: JSON text); the reply ends without
    its output, which the client sends in a later response."""

    call_id: str
    name: str
    arguments: str


ReplyEvent = ReplyText | ReplyAudio | ReplyToolCall


class ReplyStream(Protocol):
    """One reply in progress."""

    def events(self) -> AsyncGenerator[ReplyEvent, None]:
        """Text, audio and tool calls as they come; ends when the reply is complete (raises on failure)."""
        ...

    async def cancel(self, heard_seconds: float | None) -> None:
        """Stop now; the reply is remembered as heard up to ``heard_seconds`` of its audio."""
        ...

    def stored_as(self) -> dict[str, str]:
        """The stored message of each session item this reply carried (its user items, its output item),
        once the conversation service has stored them."""
        ...

    def spoken_voice(self) -> str | None:
        """The voice the reply is spoken in, once known (it may follow the user's language)."""
        ...


class Replier(Protocol):
    """The voice loop, as the Realtime face drives it."""

    async def open(self, request: ReplyRequest) -> ReplyStream:
        """Start a reply."""
        ...

    async def check(self, options: dict[str, Any]) -> None:
        """Refuse responder options the server does not allow, or values out of its bounds (422)."""
        ...

    async def forget(self, message_id: str) -> None:
        """Delete a stored message (a deleted item); one already gone is no error."""
        ...
