"""The voice loop's ``Reply`` (conversation service → sentences → TTS) as the Realtime face's ``Replier``.

A Realtime session is one conversation in the conversation service, made on the first response; each
response is a turn carrying the user's words since the previous one. The service keeps the history,
so an interrupted reply is stored as heard, exactly as on ``/api/voice/ws/chat``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import numpy as np

from gateway.conversations.client import ConversationClient, owner_of
from gateway.conversations.reply import Reply, Voice
from gateway.deps import Gateway
from gateway.realtime.reply import ReplyAudio, ReplyRequest, ReplyText, responder_options
from voicestack_common.audio import decode_audio
from voicestack_common.errors import VoicestackError


class VoiceLoopReply:
    """One ``Reply`` as a ``ReplyStream``."""

    def __init__(self, reply: Reply, user_items: list[str], item_id: str | None) -> None:
        self.reply = reply
        self.user_items = user_items
        self.item_id = item_id

    async def events(self) -> AsyncGenerator[ReplyText | ReplyAudio, None]:
        """Text deltas and each piece's audio as 24 kHz PCM16."""
        async for event in self.reply.events():
            if event.kind == "delta":
                yield ReplyText(str(event.data.get("text", "")))
            elif event.kind == "audio" and event.piece is not None:
                piece = event.piece
                pcm = decode_audio(piece.audio, sample_rate=piece.sample_rate)
                samples = np.clip(pcm.samples, -1.0, 1.0)
                yield ReplyAudio(piece.text, (samples * 32767).astype("<i2").tobytes(), pcm.sample_rate)
            elif event.kind == "error":
                raise VoicestackError(str(event.data.get("message", "")), code=str(event.data.get("code", "")))

    async def cancel(self, heard_seconds: float | None) -> None:
        """Stop, and store the reply as heard up to ``heard_seconds``."""
        self.reply.position = heard_seconds
        await self.reply.cancel()

    def spoken_voice(self) -> str | None:
        """The voice chosen for the reply (``None`` until its first piece, or the broker's default)."""
        return self.reply.voice.voice if self.reply.voice.language is None else None

    def stored_as(self) -> dict[str, str]:
        """The user items → the stored user message; the output item → the stored reply."""
        stored: dict[str, str] = {}
        user = (self.reply.user_message or {}).get("id")
        if isinstance(user, str):
            stored.update(dict.fromkeys(self.user_items, user))
        if self.item_id is not None and self.reply.message_id is not None:
            stored[self.item_id] = self.reply.message_id
        return stored


class VoiceLoopReplier:
    """Responses of one Realtime session, as turns of one conversation."""

    def __init__(self, gateway: Gateway, client: ConversationClient, caller: str, conversation_id: str) -> None:
        self.gateway = gateway
        self.client = client
        self.owner = owner_of(caller)
        self.conversation_id = conversation_id

    async def open(self, request: ReplyRequest) -> VoiceLoopReply:
        """A turn with what the user said since the last assistant message, and the client's options."""
        new: list[str] = []
        items: list[str] = []
        for turn in reversed(request.history):
            if turn.role == "assistant":
                break
            if turn.role == "user":
                new.insert(0, turn.text)
                if turn.item_id is not None:
                    items.insert(0, turn.item_id)
        text = " ".join(new).strip()
        if not text:
            raise VoicestackError("there is nothing new from the user to respond to", code="nothing_to_respond_to")
        voice = Voice(
            voice=request.voice or None,
            speed=request.speed,
            format="wav",
            language=request.language,
            pick_voice=not request.voice_fixed,
        )
        body: dict[str, Any] = {"text": text}
        if options := responder_options(request.instructions, request.temperature, request.max_tokens):
            body["responder"] = {"options": options}
        reply = Reply(self.gateway, self.client, self.owner, self.conversation_id, body, voice, self.conversation_id)
        return VoiceLoopReply(reply, items, request.item_id)

    async def check(self, options: dict[str, Any]) -> None:
        """What the conversation service would refuse, refused now."""
        if options:
            await self.client.check_responder(None, options)

    async def forget(self, message_id: str) -> None:
        """Delete the stored message."""
        try:
            await self.client.delete_message(self.owner, self.conversation_id, message_id)
        except VoicestackError as exc:
            if exc.code not in ("message_not_found", "conversation_not_found"):
                raise
