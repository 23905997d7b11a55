"""Utterances from streamed audio, as the voice loop consumes them: the live session core.

The loop's audio goes to a live session in the STT broker (``/v1/stream``, through the gateway's
``LiveRelay`` with replica failover; ``gateway.live_link``, the same link the Realtime face drives).
The core does the speech work (Silero VAD, endpointing, partials, finals); ``events()`` passes its
events on, typed, in the live-transcription wire shape (docs/live.md): ``speech_started``, ``partial``,
``speech_stopped``, ``final`` (a ``HeardFinal``: with its duration, model and ``transcribe_ms``, end of
speech → final), ``error``.

The session opens on the first audio. A chat client is often silent for long (listening to a reply);
when the core closes an idle session, the next audio opens a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from gateway.deps import Gateway
from gateway.live_link import LiveLink, open_live
from voicestack_common.live import (
    EndOfTurn,
    ErrorEvent,
    Final,
    Partial,
    SpeechStarted,
    SpeechStopped,
    StartMessage,
)

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
DEFAULT_SILENCE_MS = 700
# Core closes that are no error for a chat: the next audio opens a new session.
QUIET_CLOSES = frozenset({"idle_timeout"})
# Core errors a chat client need not see: a ``commit`` after the core's VAD already ended the utterance.
QUIET_ERRORS = frozenset({"nothing_to_commit"})


class HeardFinal(Final):
    """A ``final`` as the chat socket sends it: with what the voice loop keeps of the transcription."""

    duration_seconds: float
    model: str | None = None
    transcribe_ms: float
    """From the end of speech (the silence rule, or the client's ``commit``) to this final."""


Heard = SpeechStarted | Partial | SpeechStopped | HeardFinal | ErrorEvent


class LiveRecognizer:
    """Feed PCM16 mono at ``start.sample_rate``; read the core's events from ``events()``."""

    def __init__(self, gateway: Gateway, start: StartMessage, session_id: str, caller: str) -> None:
        self.gateway = gateway
        self.caller = caller
        self.start = start
        self._heard: asyncio.Queue[Heard | None] = asyncio.Queue()  # ``None``: closed
        self.session_id = session_id
        self.link: LiveLink | None = None
        self.model: str | None = None
        self.pump: asyncio.Task[None] | None = None
        self.opening = asyncio.Lock()
        self.open_utterance: int | None = None
        self.ended: dict[int, float] = {}  # utterance → when its end of speech was known (perf_counter)
        self.committed_at: float | None = None

    async def feed(self, pcm16: bytes) -> None:
        """More audio (``VoicestackError`` when no STT replica takes the session, or the caller's
        transcription allowance is used up)."""
        link = await self._link()
        await link.send_audio(pcm16)

    async def commit(self) -> None:
        """End the open utterance now (push-to-talk release); nothing open is no error."""
        if self.link is None:
            return
        self.committed_at = time.perf_counter()
        await self.link.commit()

    async def _link(self) -> LiveLink:
        async with self.opening:
            if self.link is None:
                # A core session counts among the caller's live sessions, as on /api/voice/ws/transcribe
                # (429 ``too_many_sessions``), and is one transcription against its allowance, as on the
                # Realtime face (429 ``rate_limited``).
                self.gateway.live_sessions.take(self.caller)
                try:
                    self.gateway.charge("transcribe", self.caller)
                    link = await open_live(self.gateway, self.start, self.session_id)
                except BaseException:
                    self.gateway.live_sessions.give_back(self.caller)
                    raise
                self.model = link.relay.model
                self.link = link
                self.pump = asyncio.create_task(self._pump(link))
            return self.link

    def _drop(self, link: LiveLink) -> bool:
        """Forget ``link`` and give its live-session slot back; False when it was gone already."""
        if self.link is not link:
            return False
        self.link, self.pump, self.open_utterance = None, None, None
        self.gateway.live_sessions.give_back(self.caller)
        return True

    async def _pump(self, link: LiveLink) -> None:
        try:
            async for event in link.events():
                self._on_core(event)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("voice loop: the live session failed")
        if self._drop(link):
            with contextlib.suppress(Exception):
                await link.close()

    async def events(self) -> AsyncIterator[Heard]:
        """What the core hears, across the sessions it opens, until ``aclose``."""
        while (event := await self._heard.get()) is not None:
            yield event

    def _on_core(self, event: object) -> None:
        now = time.perf_counter()
        if isinstance(event, SpeechStarted):
            self.open_utterance = event.utterance_id
            self._heard.put_nowait(event)
        elif isinstance(event, Partial):
            self._heard.put_nowait(event)
        elif isinstance(event, SpeechStopped):
            self.open_utterance = None
            # a commit said so first; the core's VAD says so when it sees the silence
            self.ended[event.utterance_id] = min(now, self.committed_at or now)
            self.committed_at = None
            self._heard.put_nowait(event)
        elif isinstance(event, Final):
            ended = self.ended.pop(event.utterance_id, now)
            fields = {
                "text": event.text.strip(),
                "duration_seconds": round(max(event.end - event.start, 0.0), 3),
                "model": self.model,
                "transcribe_ms": round((now - ended) * 1000, 1),
            }
            self._heard.put_nowait(HeardFinal.model_validate({**event.model_dump(), **fields}))
        elif isinstance(event, ErrorEvent):
            code = event.error.code
            if code in QUIET_ERRORS or (event.fatal and code in QUIET_CLOSES):
                self.committed_at = None
                return
            self._heard.put_nowait(event)

    async def aclose(self) -> None:
        """Close the live session (its open decodes are cancelled by the core); ``events`` ends."""
        self._heard.put_nowait(None)
        link, pump = self.link, self.pump
        if link is None or not self._drop(link):
            return
        if pump is not None:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump
        await link.close()


def live_start(
    *,
    sample_rate: int,
    language: str | None,
    silence_ms: int | None,
    partials: bool,
    model: str | None = None,
    end_of_turn: EndOfTurn | None = None,
) -> StartMessage:
    """The core session a conversation asks for: PCM16 mono as the client sends it (``ValidationError``
    for a value the core refuses)."""
    return StartMessage(
        format="pcm16",
        sample_rate=sample_rate,
        channels=1,
        language=language,
        partials=partials,
        silence_ms=silence_ms,
        end_of_turn=end_of_turn,
        model=model,
    )
