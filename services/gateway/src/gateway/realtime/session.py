"""One Realtime connection: client events in, the core's and the voice loop's events out, in OpenAI's shape.

Input audio goes to a live session in the core (``LiveLink``); its ``speech_started``, ``partial``,
``speech_stopped`` and ``final`` become ``input_audio_buffer.*`` and
``conversation.item.input_audio_transcription.*``. Responses come from the voice loop (``Replier``)
and become ``response.*``. This module holds the protocol's bookkeeping (items, ids, timelines)
and nothing else.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import io
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from gateway import brokers
from gateway.deps import Gateway
from gateway.live_link import LiveLink
from gateway.realtime import codecs
from gateway.realtime.config import SessionConfig, SessionKind
from gateway.realtime.items import Item, item_view
from gateway.realtime.protocol import (
    CLIENT_EVENTS,
    UNSUPPORTED_EVENTS,
    AppendEvent,
    ClearEvent,
    CommitEvent,
    ItemCreateEvent,
    ItemDeleteEvent,
    ItemRetrieveEvent,
    ItemTruncateEvent,
    RealtimeError,
    ResponseCancelEvent,
    ResponseCreateEvent,
    SessionUpdateEvent,
    client_event,
    error_event,
    new_id,
    validation_error,
)
from gateway.realtime.reply import OPTION_PARAMS, ReplyStream, responder_options
from gateway.realtime.responses import ResponseRun
from voicestack_common.encode import wav_header
from voicestack_common.errors import VoicestackError
from voicestack_common.jsonbody import parse_json
from voicestack_common.live import ErrorEvent, Final, Partial, SpeechStarted, SpeechStopped, StartMessage

logger = logging.getLogger(__name__)

# Least audio a manual commit takes (OpenAI's own floor).
MIN_COMMIT_MS = 100

# The core ends an idle session; a Realtime client may be silent for long (reading, listening to a reply).
QUIET_CLOSES = frozenset({"idle_timeout"})

Send = Callable[[dict[str, Any]], Awaitable[None]]
OpenLive = Callable[[StartMessage], Awaitable[LiveLink]]


@dataclass
class _Utterance:
    item_id: str
    stable: str = ""
    done: asyncio.Event = field(default_factory=asyncio.Event)


class RealtimeSession:
    """The protocol state of one connection."""

    def __init__(
        self,
        send: Send,
        gateway: Gateway,
        caller: str,
        config: SessionConfig,
        open_live: OpenLive,
        replier: Any,
    ) -> None:
        self._send = send
        self.gateway = gateway
        self.caller = caller
        self.config = config
        self.open_live = open_live
        self.replier = replier
        self.items: dict[str, Item] = {}
        self.live: LiveLink | None = None
        self._live_key: tuple[Any, ...] | None = None
        self._pump: asyncio.Task[None] | None = None
        self._utterances: dict[int, _Utterance] = {}
        self._offset_ms = 0  # input timeline of earlier core sessions (a settings change reopens one)
        self._sent_ms = 0
        self._buffered_ms = 0  # audio since the last commit, clear or VAD turn
        self._commit_event: str | None = None
        self.response: ResponseRun | None = None
        self.spoken: dict[str, ReplyStream] = {}
        """Replies with audio, by item: truncating one tells the voice loop what was heard."""
        self._item_transcriptions: dict[str, _Utterance] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.interrupted: dict[str, ReplyStream] = {}
        """Cancelled replies not yet told what was heard (a truncate or the next response settles them)."""
        self.stored: dict[str, ReplyStream] = {}
        """The reply that stored each item in the conversation service (deleting the item deletes it there)."""

    async def send(self, event: dict[str, Any]) -> None:
        """Send one server event with its own ``event_id``."""
        await self._send({"event_id": new_id("event"), **event})

    async def start(self) -> None:
        """``session.created``, for transcription sessions too (the SDK's event union has no
        ``transcription_session.created``)."""
        await self.send({"type": "session.created", "session": self.config.view()})

    async def rate_limits(self) -> None:
        """``rate_limits.updated``: the caller's response allowance (none listed without a limit)."""
        limiter = self.gateway.limits["synthesize"]
        entries = []
        if limiter.enabled:
            remaining, reset = limiter.remaining(self.caller)
            entries.append(
                {"name": "requests", "limit": limiter.burst, "remaining": remaining, "reset_seconds": round(reset, 3)}
            )
        await self.send({"type": "rate_limits.updated", "rate_limits": entries})

    async def close(self) -> None:
        """Stop the response and the live session."""
        if self.response is not None:
            await self.response.cancel("client_cancelled")
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._settle()
        await self._close_live()

    async def _settle(self, item_id: str | None = None, heard_seconds: float | None = None) -> None:
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

    # -- client events ---------------------------------------------------------------------------

    async def handle(self, text: str) -> None:
        """One client event; anything wrong becomes an ``error`` event."""
        event_id: str | None = None
        try:
            data = parse_json(text, "message")
        except VoicestackError as exc:  # the shared JSON policy: syntax, encoding, nesting depth
            await self.send(error_event(RealtimeError(exc.message, code=exc.code), None))
            return
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            await self.send(error_event(RealtimeError("An event is a JSON object with a 'type'.", param="type"), None))
            return
        event_id = data.get("event_id") if isinstance(data.get("event_id"), str) else None
        kind = data["type"]
        try:
            if kind in UNSUPPORTED_EVENTS:
                raise RealtimeError(
                    f"'{kind}' is not supported by this server.", code="unsupported_event", param="type"
                )
            if kind not in CLIENT_EVENTS:
                raise RealtimeError(f"Invalid value: '{kind}'. Unknown event type.", code="invalid_value", param="type")
            try:
                event = client_event.validate_python(data)
            except ValidationError as exc:
                problems = [{**p, "loc": p["loc"][1:] if p["loc"][:1] == (kind,) else p["loc"]} for p in exc.errors()]
                raise validation_error(problems) from None
            await self._dispatch(event)
        except RealtimeError as exc:
            await self.send(error_event(exc, event_id))
        except VoicestackError as exc:
            await self.send(error_event(RealtimeError(exc.message, code=exc.code, kind=_kind(exc)), event_id))

    async def _dispatch(self, event: Any) -> None:
        if isinstance(event, SessionUpdateEvent):
            await self._session_update(event)
        elif isinstance(event, AppendEvent):
            await self._append(event)
        elif isinstance(event, CommitEvent):
            await self._commit(event)
        elif isinstance(event, ClearEvent):
            await self._clear()
        elif isinstance(event, ItemCreateEvent | ItemTruncateEvent | ItemDeleteEvent | ItemRetrieveEvent):
            self._conversation_only(event.type)
            await self._item_event(event)
        elif isinstance(event, ResponseCreateEvent):
            self._conversation_only(event.type)
            await self._response_create(event)
        elif isinstance(event, ResponseCancelEvent):
            self._conversation_only(event.type)
            await self._response_cancel(event)

    def _conversation_only(self, kind: str) -> None:
        if self.config.kind == "transcription_session":
            raise RealtimeError(f"'{kind}' is not available in a transcription session.", param="type")

    async def _session_update(self, event: SessionUpdateEvent) -> None:
        if event.type == "transcription_session.update" and self.config.kind != "transcription_session":
            raise RealtimeError("This is a conversation session: send 'session.update'.", param="type")
        update = event.session
        given = update.model_fields_set
        await self._check_options(
            "session",
            update.instructions if "instructions" in given else None,
            update.temperature if "temperature" in given else None,
            update.max_response_output_tokens if "max_response_output_tokens" in given else None,
        )
        self.config.apply(update)
        shape: SessionKind = "transcription_session" if event.type == "transcription_session.update" else "session"
        await self.send({"type": shape + ".updated", "session": self.config.view(shape)})

    async def _check_options(
        self,
        prefix: str,
        instructions: str | None,
        temperature: float | None,
        max_tokens: int | Literal["inf"] | None,
    ) -> None:
        """Refuse what the conversation service would refuse for a turn (not allowed, out of bounds)."""
        options = responder_options(instructions, temperature, max_tokens)
        if not options or self.replier is None:
            return
        try:
            await self.replier.check(options)
        except VoicestackError as exc:
            if exc.status_code >= 500:
                raise
            option = exc.details.get("option") if isinstance(exc.details, dict) else None
            param = f"{prefix}.{OPTION_PARAMS[option]}" if option in OPTION_PARAMS else None
            raise RealtimeError(exc.message, code=exc.code, param=param) from None

    async def _append(self, event: AppendEvent) -> None:
        try:
            audio = base64.b64decode(event.audio, validate=True)
        except (binascii.Error, ValueError):
            raise RealtimeError("'audio' is not valid base64.", param="audio") from None
        if not audio:
            return
        pcm16 = codecs.to_pcm16(audio, self.config.input_audio_format)
        if len(pcm16) % 2:
            raise RealtimeError("pcm16 audio must be whole 16-bit samples.", param="audio")
        live = await self._ensure_live()
        ms = codecs.duration_ms(len(audio), self.config.input_audio_format)
        self._sent_ms += ms
        self._buffered_ms += ms
        await live.send_audio(pcm16)

    async def _commit(self, event: CommitEvent) -> None:
        if self._buffered_ms < MIN_COMMIT_MS or self.live is None:
            raise RealtimeError(
                "Error committing input audio buffer: buffer too small. Expected at least "
                f"{MIN_COMMIT_MS}ms of audio, but buffer only has {self._buffered_ms}ms of audio.",
                code="input_audio_buffer_commit_empty",
            )
        self._commit_event = event.event_id
        self._buffered_ms = 0
        await self.live.commit()

    async def _clear(self) -> None:
        if self.live is not None:
            await self.live.clear()
            for utterance_id, utterance in list(self._utterances.items()):
                if utterance.item_id not in self.items:
                    del self._utterances[utterance_id]
        self._buffered_ms = 0
        await self.send({"type": "input_audio_buffer.cleared"})

    # -- the core's events -----------------------------------------------------------------------

    def _start_message(self) -> StartMessage:
        config = self.config
        vad = config.turn_detection
        transcription = config.input_audio_transcription
        return StartMessage(
            format="pcm16",
            sample_rate=codecs.sample_rate(config.input_audio_format),
            channels=1,
            language=transcription.language if transcription else None,
            prompt=transcription.prompt if transcription else None,
            # Partials only feed transcription deltas; with manual commits a partial decode is often still
            # running at the commit, and the core's final waits behind its abort (see docs/realtime.md).
            partials=transcription is not None and vad is not None,
            vad=vad is not None,
            silence_ms=vad.silence_duration_ms if vad else None,
            vad_threshold=vad.threshold if vad else None,
            prefix_padding_ms=vad.prefix_padding_ms if vad else None,
        )

    async def _ensure_live(self) -> LiveLink:
        start = self._start_message()
        key = tuple(sorted(start.model_dump().items()))
        if self.live is not None and key == self._live_key:
            return self.live
        await self._close_live()
        self._offset_ms = self._sent_ms
        self.gateway.charge("transcribe", self.caller)
        self.live = await self.open_live(start)
        self._live_key = key
        self._pump = asyncio.create_task(self._pump_events(self.live))
        return self.live

    async def _close_live(self) -> None:
        live, pump = self.live, self._pump
        self.live, self._pump, self._live_key = None, None, None
        if live is not None:
            await live.close()
        if pump is not None:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump
        for utterance in self._utterances.values():
            utterance.done.set()
        self._utterances.clear()

    async def _pump_events(self, live: LiveLink) -> None:
        try:
            async for event in live.events():
                await self._on_core(event)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("realtime: the live session failed")
        if self.live is live:
            self.live, self._live_key = None, None
            for utterance in self._utterances.values():
                utterance.done.set()
            self._utterances.clear()

    def _ms(self, seconds: float) -> int:
        return self._offset_ms + round(seconds * 1000)

    async def _on_core(self, event: object) -> None:
        vad = self.config.turn_detection is not None
        if isinstance(event, SpeechStarted):
            utterance = self._utterances[event.utterance_id] = _Utterance(new_id("item"))
            if vad:
                await self.send(
                    {
                        "type": "input_audio_buffer.speech_started",
                        "audio_start_ms": self._ms(event.start),
                        "item_id": utterance.item_id,
                    }
                )
                # Barge-in, in OpenAI's order: speech_started, then the response ends as cancelled.
                if self.response is not None and self.config.interrupts:
                    await self.response.cancel("turn_detected")
        elif isinstance(event, SpeechStopped):
            utterance = self._utterance(event.utterance_id)
            if vad:
                self._buffered_ms = 0
                await self.send(
                    {
                        "type": "input_audio_buffer.speech_stopped",
                        "audio_end_ms": self._ms(event.end),
                        "item_id": utterance.item_id,
                    }
                )
            await self._committed(utterance)
        elif isinstance(event, Partial):
            await self._partial(event)
        elif isinstance(event, Final):
            await self._final(event)
        elif isinstance(event, ErrorEvent):
            await self._core_error(event)

    def _utterance(self, utterance_id: int) -> _Utterance:
        if utterance_id not in self._utterances:
            self._utterances[utterance_id] = _Utterance(new_id("item"))
        return self._utterances[utterance_id]

    async def _committed(self, utterance: _Utterance) -> None:
        previous = next(reversed(self.items), None)
        item = Item.user_audio(utterance.item_id)
        self.items[item.id] = item
        await self.send(
            {"type": "input_audio_buffer.committed", "previous_item_id": previous, "item_id": utterance.item_id}
        )
        await self.send({"type": "conversation.item.created", "previous_item_id": previous, "item": item_view(item)})

    async def _partial(self, event: Partial) -> None:
        utterance = self._utterance(event.utterance_id)
        if self.config.input_audio_transcription is None or not event.stable.startswith(utterance.stable):
            return
        delta, utterance.stable = event.stable[len(utterance.stable) :], event.stable
        if delta:
            await self._transcription_delta(utterance.item_id, delta)

    async def _transcription_delta(self, item_id: str, delta: str) -> None:
        await self.send(
            {
                "type": "conversation.item.input_audio_transcription.delta",
                "item_id": item_id,
                "content_index": 0,
                "delta": delta,
            }
        )

    async def _final(self, event: Final) -> None:
        utterance = self._utterance(event.utterance_id)
        self._utterances.pop(event.utterance_id, None)
        text = event.text.strip()
        item = self.items.get(utterance.item_id)
        if item is not None:
            item.transcript = text
        if self.config.input_audio_transcription is not None:
            if text.startswith(utterance.stable) and len(text) > len(utterance.stable):
                await self._transcription_delta(utterance.item_id, text[len(utterance.stable) :])
            await self.send(
                {
                    "type": "conversation.item.input_audio_transcription.completed",
                    "item_id": utterance.item_id,
                    "content_index": 0,
                    "transcript": text,
                    "usage": {"type": "duration", "seconds": round(max(event.end - event.start, 0.0), 3)},
                }
            )
        utterance.done.set()
        if (
            item is not None
            and self.config.kind == "session"
            and self.config.turn_detection is not None
            and self.config.turn_detection.create_response is not False
            and text
        ):
            await self._start_response(None, None)

    async def _core_error(self, event: ErrorEvent) -> None:
        if event.utterance_id is not None:
            utterance = self._utterance(event.utterance_id)
            self._utterances.pop(event.utterance_id, None)
            utterance.done.set()
            await self._transcription_failed(utterance.item_id, event.error.code, event.error.message)
            return
        if event.fatal and event.error.code in QUIET_CLOSES:
            return  # the next append opens a new live session
        code = "input_audio_buffer_commit_empty" if event.error.code == "nothing_to_commit" else event.error.code
        kind = "invalid_request_error" if code == "input_audio_buffer_commit_empty" else "server_error"
        client_event, self._commit_event = (
            (self._commit_event, None) if code.startswith("input_audio") else (None, None)
        )
        await self.send(error_event(RealtimeError(event.error.message, code=code, kind=kind), client_event))

    # -- conversation items ----------------------------------------------------------------------

    async def _item_event(self, event: Any) -> None:
        if isinstance(event, ItemCreateEvent):
            item = Item.from_input(event.item)
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
                utterance = _Utterance(item.id)
                self._item_transcriptions[item.id] = utterance
                task = asyncio.create_task(self._transcribe_item(item, audio, utterance))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            return
        found = self.items.get(event.item_id)
        if found is None:
            raise RealtimeError(f"Item with id '{event.item_id}' not found.", param="item_id")
        item = found
        if isinstance(event, ItemDeleteEvent):
            if self.response is not None and self.response.item_id == item.id:
                await self.response.cancel("client_cancelled")
            await self._forget(item.id)
            del self.items[item.id]
            await self.send({"type": "conversation.item.deleted", "item_id": item.id})
        elif isinstance(event, ItemRetrieveEvent):
            await self.send({"type": "conversation.item.retrieved", "item": item_view(item)})
        else:
            await self._truncate(item, event)

    async def _forget(self, item_id: str) -> None:
        """Delete the item's message from the conversation service (once no other item shares it: user
        items answered together are one stored message)."""
        self.interrupted.pop(item_id, None)
        self.spoken.pop(item_id, None)
        stream = self.stored.get(item_id)
        message_id = stream.stored_as().get(item_id) if stream is not None else None
        if message_id is not None and self.replier is not None:
            shared = any(
                other != item_id and found is stream and stream.stored_as().get(other) == message_id
                for other, found in self.stored.items()
            )
            if not shared:
                await self.replier.forget(message_id)
        self.stored.pop(item_id, None)

    def _item_audio(self, event: ItemCreateEvent) -> bytes:
        """A user audio item's audio as a 16-bit WAV (checked before the item is accepted)."""
        try:
            data = base64.b64decode(event.item.content[0].audio or "", validate=True)
        except (binascii.Error, ValueError):
            raise RealtimeError("'audio' is not valid base64.", param="item.content.0.audio") from None
        fmt = self.config.input_audio_format
        pcm16 = codecs.to_pcm16(data, fmt)
        if len(pcm16) < 2 or len(pcm16) % 2 or len(data) > self.gateway.settings.max_upload_bytes:
            raise RealtimeError("'audio' must hold whole samples of the input format.", param="item.content.0.audio")
        return wav_header(codecs.sample_rate(fmt), len(pcm16)) + pcm16

    async def _transcribe_item(self, item: Item, wav: bytes, utterance: _Utterance) -> None:
        """Transcribe a client's audio item on the STT broker; responses wait for it."""
        transcription = self.config.input_audio_transcription
        try:
            self.gateway.charge("transcribe", self.caller)
            result = await brokers.transcribe(
                self.gateway.stt,
                io.BytesIO(wav),
                filename="item.wav",
                content_type="audio/wav",
                language=transcription.language if transcription else None,
            )
        except VoicestackError as exc:
            if transcription is not None:
                await self._transcription_failed(item.id, exc.code, exc.message)
        else:
            item.transcript = result.text.strip()
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
            self._item_transcriptions.pop(item.id, None)

    async def _transcription_failed(self, item_id: str, code: str, message: str) -> None:
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
        if self.response is not None and self.response.item_id == item.id:
            await self.response.cancel("client_cancelled")
        item.truncate(event.audio_end_ms)
        await self._settle(item.id, event.audio_end_ms / 1000)
        await self.send(
            {
                "type": "conversation.item.truncated",
                "item_id": item.id,
                "content_index": 0,
                "audio_end_ms": event.audio_end_ms,
            }
        )

    # -- responses -------------------------------------------------------------------------------

    async def _response_create(self, event: ResponseCreateEvent) -> None:
        if self.response is not None:
            raise RealtimeError(
                "Conversation already has an active response in progress.",
                code="conversation_already_has_active_response",
            )
        if (options := event.response) is not None:
            await self._check_options(
                "response", options.instructions, options.temperature, options.max_response_output_tokens
            )
        await self._start_response(event.response, event.event_id)

    async def _start_response(self, options: Any, event_id: str | None) -> None:
        if self.response is not None:
            return
        self.gateway.charge("synthesize", self.caller)
        await self._settle()
        pending = [*self._utterances.values(), *self._item_transcriptions.values()]
        waits: list[Awaitable[Any]] = [u.done.wait() for u in pending if u.item_id in self.items]
        run = ResponseRun(self, options, waits)
        self.response = run
        run.task.add_done_callback(lambda _: self._response_done(run))

    def _response_done(self, run: ResponseRun) -> None:
        if self.response is run:
            self.response = None

    async def _response_cancel(self, event: ResponseCancelEvent) -> None:
        run = self.response
        if run is None or (event.response_id is not None and event.response_id != run.id):
            raise RealtimeError("There is no active response to cancel.", code="response_cancel_not_active")
        await run.cancel("client_cancelled")


def _kind(exc: VoicestackError) -> str:
    status = getattr(exc, "status_code", 500)
    if status == 429:
        return "rate_limit_error"
    return "invalid_request_error" if status < 500 else "server_error"
