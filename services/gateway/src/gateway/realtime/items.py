"""Conversation items as the Realtime protocol shows them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.realtime import codecs
from gateway.realtime.protocol import ItemInput, RealtimeError, new_id


@dataclass
class Utterance:
    """Audio being transcribed for an item (a live utterance, or an audio item); responses wait on ``done``."""

    item_id: str
    stable: str = ""
    """Live utterances: the stable text already sent as transcription deltas."""
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Item:
    """One message of the conversation."""

    id: str
    role: Literal["user", "assistant", "system"]
    kind: Literal["input_text", "input_audio", "text", "audio"]
    text: str | None = None
    transcript: str | None = None
    status: Literal["completed", "incomplete", "in_progress"] = "completed"
    audio_format: codecs.RealtimeFormat | None = None
    audio_bytes: int = 0
    pieces: list[tuple[int, int, str]] = field(default_factory=list)
    """Assistant audio: ``(first byte, end byte, text)`` of each spoken piece, to truncate by."""
    language: str | None = None
    """User audio: the language its transcript was heard in."""

    @classmethod
    def user_audio(cls, item_id: str) -> Item:
        """Audio the live session committed; its transcript follows."""
        return cls(item_id, "user", "input_audio")

    @classmethod
    def assistant(cls, item_id: str, audio_format: codecs.RealtimeFormat | None) -> Item:
        """A response's output, filled in as it streams."""
        kind: Literal["text", "audio"] = "audio" if audio_format else "text"
        return cls(item_id, "assistant", kind, audio_format=audio_format, status="in_progress")

    @classmethod
    def from_input(cls, item: ItemInput) -> Item:
        """A client's ``conversation.item.create`` (messages only: one text or audio part)."""
        if item.type != "message":
            raise RealtimeError(f"Items of type '{item.type}' are not supported.", param="item.type")
        if item.role is None:
            raise RealtimeError("A message needs a role.", code="missing_required_parameter", param="item.role")
        if len(item.content) != 1:
            raise RealtimeError("A message holds exactly one content part here.", param="item.content")
        part = item.content[0]
        allowed = {"user": ("input_text", "input_audio"), "system": ("input_text",), "assistant": ("text",)}
        if part.type not in allowed[item.role]:
            raise RealtimeError(
                f"A {item.role} message cannot hold '{part.type}' content.", param="item.content.0.type"
            )
        kind: Any = part.type
        if kind == "input_audio" and not part.audio:
            raise RealtimeError("An input_audio part needs 'audio'.", param="item.content.0.audio")
        if kind != "input_audio" and part.text is None:
            raise RealtimeError(f"A {kind} part needs 'text'.", param="item.content.0.text")
        return cls(item.id or new_id("item"), item.role, kind, text=part.text, transcript=part.transcript)

    @property
    def words(self) -> str:
        """What the responder reads of this item."""
        return (self.text if self.kind in ("input_text", "text") else self.transcript) or ""

    def add_audio(self, text: str, byte_count: int) -> None:
        """Record a spoken piece that was sent."""
        self.pieces.append((self.audio_bytes, self.audio_bytes + byte_count, text))
        self.audio_bytes += byte_count

    def heard_seconds(self, audio_end_ms: int) -> float:
        """``audio_end_ms`` in seconds (for the voice loop)."""
        return audio_end_ms / 1000

    def truncate(self, audio_end_ms: int) -> None:
        """Keep only what was heard: the audio before ``audio_end_ms`` and the words spoken in it."""
        assert self.audio_format is not None
        end = codecs.byte_offset(audio_end_ms, self.audio_format)
        words: list[str] = []
        for first, last, text in self.pieces:
            if end >= last:
                words.extend(text.split())
            elif end > first:
                share = (end - first) / (last - first)
                piece_words = text.split()
                words.extend(piece_words[: int(len(piece_words) * share)])
        self.transcript = " ".join(words)
        self.audio_bytes = min(self.audio_bytes, end)
        self.pieces = [(a, min(b, end), t) for a, b, t in self.pieces if a < end]


def item_view(item: Item, status: str | None = None) -> dict[str, Any]:
    """The item as ``conversation.item.*`` and ``response.output_item.*`` show it."""
    if item.kind in ("input_audio", "audio"):
        part: dict[str, Any] = {"type": item.kind, "transcript": item.transcript}
    else:
        part = {"type": item.kind, "text": item.text or ""}
    content = [part] if not (item.role == "assistant" and item.status == "in_progress" and status is None) else []
    return {
        "id": item.id,
        "object": "realtime.item",
        "type": "message",
        "status": status or item.status,
        "role": item.role,
        "content": content,
    }
