"""What a response needs from the voice loop: reply text as it is written, its speech as it is synthesized.

The face drives a ``Replier`` and never splits sentences, calls a responder or a TTS broker itself.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Literal, Protocol


@dataclass(frozen=True, slots=True)
class Turn:
    """One message of the conversation so far, as the responder sees it."""

    role: Literal["user", "assistant", "system"]
    text: str


@dataclass(frozen=True, slots=True)
class ReplyRequest:
    """One response: the conversation so far, how to answer and whether to speak."""

    history: list[Turn]
    instructions: str | None = None
    voice: str | None = None
    speed: float | None = None
    audio: bool = True
    max_tokens: int | None = None
    temperature: float | None = None


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


class ReplyStream(Protocol):
    """One reply in progress."""

    def events(self) -> AsyncGenerator[ReplyText | ReplyAudio, None]:
        """Text and audio as they come; ends when the reply is complete (raises on failure)."""
        ...

    async def cancel(self, heard_seconds: float | None) -> None:
        """Stop now; the reply is remembered as heard up to ``heard_seconds`` of its audio."""
        ...


class Replier(Protocol):
    """The voice loop, as the Realtime face drives it."""

    async def open(self, request: ReplyRequest) -> ReplyStream:
        """Start a reply."""
        ...
