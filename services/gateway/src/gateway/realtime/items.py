"""Conversation items as the Realtime protocol shows them: messages, the model's function calls and their
outputs."""

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
    """One item of the conversation: a message (``kind``: its content part's type), a function call
    (role ``assistant``) or a function call's output (role ``user``)."""

    id: str
    role: Literal["user", "assistant", "system"]
    kind: Literal["input_text", "input_audio", "text", "audio", "function_call", "function_call_output"]
    text: str | None = None
    transcript: str | None = None
    status: Literal["completed", "incomplete", "in_progress"] = "completed"
    audio_format: codecs.RealtimeFormat | None = None
    audio_bytes: int = 0
    pieces: list[tuple[int, int, str]] = field(default_factory=list)
    """Assistant audio: ``(first byte, end byte, text)`` of each spoken piece, to truncate by."""
    language: str | None = None
    """User audio: the language its transcript was heard in."""
    call_id: str | None = None
    """Function calls and outputs: the call's id."""
    name: str | None = None
    arguments: str = ""
    output: str = ""
    delivered: bool = False
    """A function call's output: sent to the responder with a response (it is never sent twice)."""

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
    def function_call(cls, item_id: str, call_id: str, name: str) -> Item:
        """A call the model made (its arguments are set as they are sent)."""
        return cls(item_id, "assistant", "function_call", status="in_progress", call_id=call_id, name=name)

    @classmethod
    def from_input(cls, item: ItemInput) -> Item:
        """A client's ``conversation.item.create``: a message (one text or audio part) or a function call's
        output. Function calls are the model's own: a client cannot make one up."""
        if item.type == "function_call_output":
            return cls._output(item)
        if item.type != "message":
            raise RealtimeError(
                f"Items of type '{item.type}' cannot be created: function calls come from the model.",
                param="item.type",
            )
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

    @classmethod
    def _output(cls, item: ItemInput) -> Item:
        for name in ("role", "name", "arguments"):
            if getattr(item, name) is not None:
                raise RealtimeError(f"A function_call_output item has no '{name}'.", param=f"item.{name}")
        if item.content:
            raise RealtimeError("A function_call_output item has no 'content'.", param="item.content")
        if item.call_id is None or item.output is None:
            name = "call_id" if item.call_id is None else "output"
            raise RealtimeError(
                f"Missing required parameter: 'item.{name}'.", code="missing_required_parameter", param=f"item.{name}"
            )
        return cls(item.id or new_id("item"), "user", "function_call_output", call_id=item.call_id, output=item.output)

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
    head = {"id": item.id, "object": "realtime.item", "type": "message", "status": status or item.status}
    if item.kind == "function_call":
        return {
            **head,
            "type": "function_call",
            "name": item.name,
            "call_id": item.call_id,
            "arguments": item.arguments,
        }
    if item.kind == "function_call_output":
        return {**head, "type": "function_call_output", "call_id": item.call_id, "output": item.output}
    if item.kind in ("input_audio", "audio"):
        part: dict[str, Any] = {"type": item.kind, "transcript": item.transcript}
    else:
        part = {"type": item.kind, "text": item.text or ""}
    content = [part] if not (item.role == "assistant" and item.status == "in_progress" and status is None) else []
    return {**head, "role": item.role, "content": content}
