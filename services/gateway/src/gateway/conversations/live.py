"""Recognition for the voice loop from the STT broker's live session (``/v1/stream``, via the relay).

The relay (gateway/relay.py) keeps the session on a replica and moves it to another one if that
replica dies; this adapter turns its events into the loop's: ``speech_started``, ``partial``,
``speech_stopped`` and ``final``, with the same fields the energy recognizer gives.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

from gateway.conversations.recognizer import SAMPLE_RATE, Emit
from gateway.deps import Gateway
from gateway.relay import LiveRelay
from voicestack_common.live import Final, StartMessage


class LiveRecognizer:
    """Feed PCM16 mono at 16 kHz; the broker's live session finds and transcribes the utterances."""

    def __init__(
        self, gateway: Gateway, emit: Emit, *, language: str | None, silence_ms: int, session_id: str | None
    ) -> None:
        self.gateway = gateway
        self.emit = emit
        self.session_id = session_id
        self.stopped_at = 0.0
        start = StartMessage(
            format="pcm16",
            sample_rate=SAMPLE_RATE,
            language=language,
            silence_ms=silence_ms,
            session_id=session_id,
        )
        self.relay = LiveRelay(
            gateway.stt, start, self._event, self._final_event, max_frame=gateway.settings.live_max_frame_bytes
        )

    async def open(self) -> None:
        """Open the broker session (``RelayError`` when no replica takes it)."""
        await self.relay.open()

    async def feed(self, pcm16: bytes) -> None:
        """More audio."""
        await self.relay.send_audio(pcm16)

    async def commit(self) -> None:
        """End the current utterance now."""
        await self.relay.send_control(json.dumps({"type": "commit"}))

    async def aclose(self) -> None:
        """Close the broker session."""
        await self.relay.close()

    def _final_event(self, final: Final, started_at: datetime) -> None:
        self.gateway.events.heard(started_at, self.session_id, final, self.relay.model)

    async def _event(self, text: str) -> None:
        event: dict[str, Any] = json.loads(text)
        kind = event.get("type")
        if kind == "speech_started":
            await self.emit({"type": kind, "utterance": event.get("utterance_id"), "at": event.get("start")})
        elif kind == "partial":
            await self.emit(
                {"type": kind, "utterance": event.get("utterance_id"), "text": event.get("text", ""), "live": True}
            )
        elif kind == "speech_stopped":
            self.stopped_at = time.perf_counter()
            await self.emit({"type": kind, "utterance": event.get("utterance_id"), "at": event.get("end")})
        elif kind == "final":
            start, end = float(event.get("start") or 0.0), float(event.get("end") or 0.0)
            waited = (time.perf_counter() - self.stopped_at) * 1000 if self.stopped_at else None
            await self.emit(
                {
                    "type": "final",
                    "utterance": event.get("utterance_id"),
                    "text": str(event.get("text", "")).strip(),
                    "language": event.get("language"),
                    "confidence": event.get("confidence"),
                    "duration_seconds": round(max(0.0, end - start), 3),
                    "model": self.relay.model,
                    "transcribe_ms": round(waited, 1) if waited is not None else None,
                }
            )
        elif kind == "error":
            await self.emit({"type": "error", "error": event.get("error", {})})
