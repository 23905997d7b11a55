"""The conversation of a Realtime session: its items in order, ``conversation.item.*`` events, audio items
transcribed on the STT broker, function call outputs, truncation, and what the conversation service
stored of each item."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import io
from typing import TYPE_CHECKING, Any

from gateway import brokers
from gateway.realtime import codecs
from gateway.realtime.items import Item, Utterance, item_view
from gateway.realtime.part import SessionPart
from gateway.realtime.protocol import (
    ItemCreateEvent,
    ItemDeleteEvent,
    ItemRetrieveEvent,
    ItemTruncateEvent,
    RealtimeError,
    stt_model,
)
from gateway.realtime.replier import ReplyStream
from voicestack_common.encode import wav_header
from voicestack_common.errors import VoicestackError

if TYPE_CHECKING:
    from gateway.realtime.session import RealtimeSession


class Conversation(SessionPart):
    """The items of one session, and the replies that spoke and stored them."""

    def __init__(self, session: RealtimeSession) -> None:
        super().__init__(session)
        self.items: dict[str, Item] = {}
        self.spoken: dict[str, ReplyStream] = {}
        """Replies with audio, by item: truncating one tells the voice loop what was heard."""
        self.interrupted: dict[str, ReplyStream] = {}
        """Cancelled replies not yet told what was heard (a truncate or the next response settles them)."""
        self.stored: dict[str, ReplyStream] = {}
        """The reply that stored each item in the conversation service (deleting the item deletes it there)."""
        self._transcriptions: dict[str, Utterance] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def pending(self) -> list[Utterance]:
        """Audio items whose transcript has not come yet."""
        return list(self._transcriptions.values())

    async def close(self) -> None:
        """Stop transcribing items; tell every interrupted reply what was heard."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.settle()

    async def settle(self, item_id: str | None = None, heard_seconds: float | None = None) -> None:
        """Tell the voice loop what was heard: of one item (truncate), or of every interrupted reply
        not truncated (without a position: what was sent)."""
        if item_id is None:
            streams = list(self.interrupted.values())
            self.interrupted.clear()
        else:
            found = self.interrupted.pop(item_id, None) or self.spoken.get(item_id)
            streams = [found] if found is not None else []
        for key in [item_id] if item_id is not None else []:
            self.spoken.pop(key, None)
        for stream in streams:
            with contextlib.suppress(Exception):
                await stream.cancel(heard_seconds)

    async def handle(self, event: Any) -> None:
        """``conversation.item.create`` / ``delete`` / ``retrieve`` / ``truncate``."""
        if isinstance(event, ItemCreateEvent):
            item = Item.from_input(event.item)
            if item.kind == "function_call_output" and not self._called(item.call_id):
                raise RealtimeError(
                    f"Tool call ID '{item.call_id}' not found in conversation.",
                    code="invalid_tool_call_id",
                    param="item.call_id",
                )
            if item.id in self.items:
                raise RealtimeError(f"Item with id '{item.id}' already exists.", param="item.id")
            previous = event.previous_item_id
            if previous is not None and previous != "root" and previous not in self.items:
                raise RealtimeError(f"Item with id '{previous}' not found.", param="previous_item_id")
            after = next(reversed(self.items), None) if previous is None else previous
            audio = self._item_audio(event) if item.kind == "input_audio" else None
            self._insert(item, previous)
            await self.send(
                {
                    "type": "conversation.item.created",
                    "previous_item_id": after if previous != "root" else None,
                    "item": item_view(item),
                }
            )
            if audio is not None:
                utterance = Utterance(item.id)
                self._transcriptions[item.id] = utterance
                task = asyncio.create_task(self._transcribe_item(item, audio, utterance))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            return
        found = self.items.get(event.item_id)
        if found is None:
            raise RealtimeError(f"Item with id '{event.item_id}' not found.", param="item_id")
        item = found
        if isinstance(event, ItemDeleteEvent):
            if self.session.response is not None and self.session.response.item_id == item.id:
                await self.session.response.cancel("client_cancelled")
            await self._forget(item.id)
            del self.items[item.id]
            await self.send({"type": "conversation.item.deleted", "item_id": item.id})
        elif isinstance(event, ItemRetrieveEvent):
            await self.send({"type": "conversation.item.retrieved", "item": item_view(item)})
        else:
            await self._truncate(item, event)

    def _called(self, call_id: str | None) -> bool:
        """Whether the model's call ``call_id`` is an item of the conversation (as OpenAI checks)."""
        return any(item.kind == "function_call" and item.call_id == call_id for item in self.items.values())

    async def _forget(self, item_id: str) -> None:
        """Delete the item's message from the conversation service (once no other item shares it: user
        items answered together are one stored message)."""
        self.interrupted.pop(item_id, None)
        self.spoken.pop(item_id, None)
        stream = self.stored.get(item_id)
        message_id = stream.stored_as().get(item_id) if stream is not None else None
        if message_id is not None and self.session.replier is not None:
            shared = any(
                other != item_id and found is stream and stream.stored_as().get(other) == message_id
                for other, found in self.stored.items()
            )
            if not shared:
                await self.session.replier.forget(message_id)
        self.stored.pop(item_id, None)

    def _item_audio(self, event: ItemCreateEvent) -> bytes:
        """A user audio item's audio as a 16-bit WAV (checked before the item is accepted)."""
        try:
            data = base64.b64decode(event.item.content[0].audio or "", validate=True)
        except (binascii.Error, ValueError):
            raise RealtimeError("'audio' is not valid base64.", param="item.content.0.audio") from None
        fmt = self.config.input_audio_format
        pcm16 = codecs.to_pcm16(data, fmt)
        if len(pcm16) < 2 or len(pcm16) % 2 or len(data) > self.session.gateway.settings.max_upload_bytes:
            raise RealtimeError("'audio' must hold whole samples of the input format.", param="item.content.0.audio")
        return wav_header(codecs.sample_rate(fmt), len(pcm16)) + pcm16

    async def _transcribe_item(self, item: Item, wav: bytes, utterance: Utterance) -> None:
        """Transcribe a client's audio item on the STT broker; responses wait for it."""
        transcription = self.config.input_audio_transcription
        try:
            self.session.gateway.charge("transcribe", self.session.caller)
            result = await brokers.transcribe(
                self.session.gateway.stt,
                io.BytesIO(wav),
                filename="item.wav",
                content_type="audio/wav",
                language=transcription.language if transcription else None,
                model=stt_model(transcription.model if transcription else None),
            )
        except VoicestackError as exc:
            if transcription is not None:
                await self.transcription_failed(item.id, exc.code, exc.message)
        else:
            item.transcript, item.language = result.text.strip(), result.language
            if transcription is not None:
                await self.send(
                    {
                        "type": "conversation.item.input_audio_transcription.completed",
                        "item_id": item.id,
                        "content_index": 0,
                        "transcript": item.transcript,
                        "usage": {"type": "duration", "seconds": round(result.duration_seconds, 3)},
                    }
                )
        finally:
            utterance.done.set()
            self._transcriptions.pop(item.id, None)

    async def transcription_failed(self, item_id: str, code: str, message: str) -> None:
        await self.send(
            {
                "type": "conversation.item.input_audio_transcription.failed",
                "item_id": item_id,
                "content_index": 0,
                "error": {"type": "server_error", "code": code, "message": message, "param": None},
            }
        )

    def _insert(self, item: Item, previous: str | None) -> None:
        if previous is None:
            self.items[item.id] = item
            return
        ordered = list(self.items.items())
        at = 0 if previous == "root" else [key for key, _ in ordered].index(previous) + 1
        ordered.insert(at, (item.id, item))
        self.items = dict(ordered)

    async def _truncate(self, item: Item, event: ItemTruncateEvent) -> None:
        if item.role != "assistant" or item.audio_format is None:
            raise RealtimeError("Only assistant messages with audio can be truncated.", param="item_id")
        if event.content_index != 0:
            raise RealtimeError("Only content_index 0 holds audio.", param="content_index")
        sent_ms = codecs.duration_ms(item.audio_bytes, item.audio_format)
        if event.audio_end_ms > sent_ms:
            raise RealtimeError(
                f"audio_end_ms {event.audio_end_ms} is past the {sent_ms} ms of audio this item holds.",
                param="audio_end_ms",
            )
        if self.session.response is not None and self.session.response.item_id == item.id:
            await self.session.response.cancel("client_cancelled")
        item.truncate(event.audio_end_ms)
        await self.settle(item.id, event.audio_end_ms / 1000)
        await self.send(
            {
                "type": "conversation.item.truncated",
                "item_id": item.id,
                "content_index": 0,
                "audio_end_ms": event.audio_end_ms,
            }
        )
