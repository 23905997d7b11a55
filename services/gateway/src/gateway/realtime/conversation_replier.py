"""The voice loop's ``Reply`` (conversation service → sentences → TTS) as the Realtime face's ``Replier``.

A Realtime session is one conversation in the conversation service, made on the first response; each
response is a turn carrying the user's words since the previous one. The service keeps the history,
so an interrupted reply is stored as heard, exactly as on ``/api/voice/ws/chat``. The client's tools go
with each turn; a call of one ends the turn pending, and its output goes with a later turn.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncGenerator
from typing import Any

from gateway.conversations.client import ConversationClient, owner_of
from gateway.deps import Gateway
from gateway.realtime.replier import ReplyAudio, ReplyEvent, ReplyRequest, ReplyText, ReplyToolCall, responder_options
from gateway.usecases.spoken_reply import Reply, ReplyFailed, SpokenPiece, Voice
from voicestack_common.contracts.conversation import ResponderChoice, TurnDelta, TurnRequest, TurnToolCall
from voicestack_common.errors import VoicestackError


class VoiceLoopReply:
    """One ``Reply`` as a ``ReplyStream``."""

    def __init__(self, reply: Reply, user_items: list[str], item_id: str | None) -> None:
        self.reply = reply
        self.user_items = user_items
        self.item_id = item_id

    async def events(self) -> AsyncGenerator[ReplyEvent, None]:
        """Text deltas, each piece's audio as PCM16 at the broker's rate (Kokoro's 24 kHz: Realtime's own)
        and the calls of the client's tools (the service's own tools are its business: not shown)."""
        async for event in self.reply.events():
            if isinstance(event, TurnDelta):
                yield ReplyText(event.text)
            elif isinstance(event, TurnToolCall) and event.call.kind == "client":
                yield ReplyToolCall(event.call.call_id, event.call.name, event.call.arguments)
            elif isinstance(event, SpokenPiece):
                yield ReplyAudio(event.text, base64.b64decode(event.audio_base64), event.sample_rate)
            elif isinstance(event, ReplyFailed):
                raise event.error

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
        if self.reply.user_message is not None:
            stored.update(dict.fromkeys(self.user_items, self.reply.user_message.id))
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
        """A turn with what the user said since the last assistant message, the outputs of the client's
        tools not yet sent, and the client's options and tools."""
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
        if not text and not request.tool_outputs:
            raise VoicestackError("there is nothing new from the user to respond to", code="nothing_to_respond_to")
        voice = Voice(
            voice=request.voice or None,
            speed=request.speed,
            format="pcm",  # raw PCM16 as the broker makes it: nothing to decode
            language=request.language,
            pick_voice=not request.voice_fixed,
        )
        options = responder_options(request.instructions, request.temperature, request.max_tokens)
        body = TurnRequest(
            text=text or None,
            responder=ResponderChoice(options=options),
            tools=request.tools,
            tool_choice=request.tool_choice,
            tool_outputs=request.tool_outputs,
        )
        reply = Reply(self.gateway, self.client, self.owner, self.conversation_id, body, voice, self.conversation_id)
        return VoiceLoopReply(reply, items, request.item_id)

    async def check(self, options: dict[str, Any]) -> None:
        """What the conversation service would refuse, refused now."""
        if options:
            await self.client.check(ResponderChoice(options=options))

    async def forget(self, message_id: str) -> None:
        """Delete the stored message."""
        try:
            await self.client.delete_message(self.owner, self.conversation_id, message_id)
        except VoicestackError as exc:
            if exc.code not in ("message_not_found", "conversation_not_found"):
                raise
