"""The voice loop's ``Reply`` (conversation service → sentences → TTS) as the Realtime face's ``Replier``.

A Realtime session is one conversation in the conversation service, made on the first response; each
response is a turn carrying the user's words since the previous one. The service keeps the history,
so an interrupted reply is stored as heard, exactly as on ``/api/voice/ws/chat``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import numpy as np

from gateway.conversations.client import ConversationClient, owner_of
from gateway.conversations.reply import Reply, Voice
from gateway.deps import Gateway
from gateway.realtime.reply import ReplyAudio, ReplyRequest, ReplyText
from voicestack_common.audio import decode_audio
from voicestack_common.errors import VoicestackError


class VoiceLoopReply:
    """One ``Reply`` as a ``ReplyStream``."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply

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


class VoiceLoopReplier:
    """Responses of one Realtime session, as turns of one conversation."""

    def __init__(self, gateway: Gateway, client: ConversationClient, caller: str, conversation_id: str) -> None:
        self.gateway = gateway
        self.client = client
        self.owner = owner_of(caller)
        self.conversation_id = conversation_id

    async def open(self, request: ReplyRequest) -> VoiceLoopReply:
        """A turn with what the user said since the last assistant message."""
        new: list[str] = []
        for turn in reversed(request.history):
            if turn.role == "assistant":
                break
            if turn.role == "user":
                new.insert(0, turn.text)
        text = " ".join(new).strip()
        if not text:
            raise VoicestackError("there is nothing new from the user to respond to", code="nothing_to_respond_to")
        voice = Voice(voice=request.voice or None, speed=request.speed, format="wav")
        reply = Reply(
            self.gateway, self.client, self.owner, self.conversation_id, {"text": text}, voice, self.conversation_id
        )
        return VoiceLoopReply(reply)
