"""The input audio buffer of a Realtime session: appended audio goes to a live session in the core
(``LiveLink``), whose ``speech_started``, ``partial``, ``speech_stopped`` and ``final`` become
``input_audio_buffer.*`` and ``conversation.item.input_audio_transcription.*``; with server VAD a
final starts a response, and speech during one cancels it (barge-in)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from gateway.live_link import LiveLink
from gateway.realtime import codecs
from gateway.realtime.items import Item, Utterance, item_view
from gateway.realtime.part import SessionPart
from gateway.realtime.protocol import AppendEvent, CommitEvent, RealtimeError, error_event, new_id, stt_model
from voicestack_common.live import ErrorEvent, Final, Partial, SpeechStarted, SpeechStopped, StartMessage

if TYPE_CHECKING:
    from gateway.realtime.session import RealtimeSession

logger = logging.getLogger(__name__)

# Least audio a manual commit takes (OpenAI's own floor).
MIN_COMMIT_MS = 100

# The core ends an idle session; a Realtime client may be silent for long (reading, listening to a reply).
QUIET_CLOSES = frozenset({"idle_timeout"})

OpenLive = Callable[[StartMessage], Awaitable[LiveLink]]


class InputAudio(SessionPart):
    """The audio side of one session: the live session in the core and the utterances it hears."""

    def __init__(self, session: RealtimeSession) -> None:
        super().__init__(session)
        self.live: LiveLink | None = None
        self._live_key: tuple[Any, ...] | None = None
        self._pump: asyncio.Task[None] | None = None
        self._utterances: dict[int, Utterance] = {}
        self._offset_ms = 0  # input timeline of earlier core sessions (a settings change reopens one)
        self._sent_ms = 0
        self._buffered_ms = 0  # audio since the last commit, clear or VAD turn
        self._commit_event: str | None = None

    def pending(self) -> list[Utterance]:
        """Utterances whose transcript has not come yet."""
        return list(self._utterances.values())

    async def append(self, event: AppendEvent) -> None:
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

    async def commit(self, event: CommitEvent) -> None:
        if self._buffered_ms < MIN_COMMIT_MS or self.live is None:
            raise RealtimeError(
                "Error committing input audio buffer: buffer too small. Expected at least "
                f"{MIN_COMMIT_MS}ms of audio, but buffer only has {self._buffered_ms}ms of audio.",
                code="input_audio_buffer_commit_empty",
            )
        self._commit_event = event.event_id
        self._buffered_ms = 0
        await self.live.commit()

    async def clear(self) -> None:
        if self.live is not None:
            await self.live.clear()
            for utterance_id, utterance in list(self._utterances.items()):
                if utterance.item_id not in self.session.conversation.items:
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
            model=stt_model(transcription.model if transcription else None),
            prompt=transcription.prompt if transcription else None,
            # Partials only feed transcription deltas; with manual commits a partial decode is often still
            # running at the commit, and the core's final waits behind its abort (see docs/realtime.md).
            partials=transcription is not None and vad is not None,
            vad=vad is not None,
            silence_ms=vad.silence_duration_ms if vad else None,
            end_of_turn=("model" if vad.type == "semantic_vad" else "silence") if vad else None,
            vad_threshold=vad.threshold if vad else None,
            prefix_padding_ms=vad.prefix_padding_ms if vad else None,
        )

    async def _ensure_live(self) -> LiveLink:
        start = self._start_message()
        key = tuple(sorted(start.model_dump().items()))
        if self.live is not None and key == self._live_key:
            return self.live
        await self.close()
        self._offset_ms = self._sent_ms
        self.session.gateway.charge("transcribe", self.session.caller)
        self.live = await self.session.open_live(start)
        self._live_key = key
        self._pump = asyncio.create_task(self._pump_events(self.live))
        return self.live

    async def close(self) -> None:
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
            utterance = self._utterances[event.utterance_id] = Utterance(new_id("item"))
            if vad:
                await self.send(
                    {
                        "type": "input_audio_buffer.speech_started",
                        "audio_start_ms": self._ms(event.start),
                        "item_id": utterance.item_id,
                    }
                )
                # Barge-in, in OpenAI's order: speech_started, then the response ends as cancelled.
                if self.session.response is not None and self.config.interrupts:
                    await self.session.response.cancel("turn_detected")
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

    def _utterance(self, utterance_id: int) -> Utterance:
        if utterance_id not in self._utterances:
            self._utterances[utterance_id] = Utterance(new_id("item"))
        return self._utterances[utterance_id]

    async def _committed(self, utterance: Utterance) -> None:
        previous = next(reversed(self.session.conversation.items), None)
        item = Item.user_audio(utterance.item_id)
        self.session.conversation.items[item.id] = item
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
        item = self.session.conversation.items.get(utterance.item_id)
        if item is not None:
            item.transcript, item.language = text, event.language
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
            await self.session.start_response(None)

    async def _core_error(self, event: ErrorEvent) -> None:
        if event.utterance_id is not None:
            utterance = self._utterance(event.utterance_id)
            self._utterances.pop(event.utterance_id, None)
            utterance.done.set()
            await self.session.conversation.transcription_failed(
                utterance.item_id, event.error.code, event.error.message
            )
            return
        if event.fatal and event.error.code in QUIET_CLOSES:
            return  # the next append opens a new live session
        code = "input_audio_buffer_commit_empty" if event.error.code == "nothing_to_commit" else event.error.code
        kind = "invalid_request_error" if code == "input_audio_buffer_commit_empty" else "server_error"
        client_event, self._commit_event = (
            (self._commit_event, None) if code.startswith("input_audio") else (None, None)
        )
        await self.send(error_event(RealtimeError(event.error.message, code=code, kind=kind), client_event))
