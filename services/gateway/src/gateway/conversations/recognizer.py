"""Utterances from streamed audio, as the voice loop consumes them.

The loop reads a stream of recognition events (``speech_started``, ``partial``,
``speech_stopped``, ``final``), the same events the STT broker's live session sends. This
recognizer makes them in the gateway: an energy detector finds where speech starts and stops,
and each finished utterance is transcribed by the STT broker's file endpoint. It gives no
partials; a live session gives them and better endpoints (Silero), and the loop takes its
events unchanged.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from gateway import brokers
from gateway.deps import Gateway
from voicestack_common.contracts.stt import TranscribeResponse
from voicestack_common.encode import wav_header
from voicestack_common.errors import VoicestackError
from voicestack_common.events import utc_now

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
FRAME_MS = 20
# A frame louder than this (RMS of full scale, about -40 dBFS) counts as speech.
SPEECH_RMS = 0.01
# Speech must last this long to start an utterance (a click or a cough does not).
START_MS = 100
# Audio kept from before the detected start, so the first word is whole.
PREROLL_MS = 300
DEFAULT_SILENCE_MS = 700
MAX_UTTERANCE_S = 60.0

Emit = Callable[[dict[str, Any]], Awaitable[None]]


class EnergyRecognizer:
    """Feed PCM16 mono at 16 kHz; events go to ``emit``; each utterance is transcribed in order."""

    def __init__(
        self,
        gateway: Gateway,
        emit: Emit,
        *,
        language: str | None,
        silence_ms: int = DEFAULT_SILENCE_MS,
        session_id: str | None = None,
    ) -> None:
        self.gateway = gateway
        self.session_id = session_id
        self.emit = emit
        self.language = language
        self.frame = SAMPLE_RATE * FRAME_MS // 1000 * 2
        self.silence_frames = max(1, silence_ms // FRAME_MS)
        self.start_frames = max(1, START_MS // FRAME_MS)
        self.preroll = bytearray()
        self.utterance = bytearray()
        self.pending = b""
        self.in_speech = False
        self.loud = 0
        self.quiet = 0
        self.utterances = 0
        self.received = 0
        self.started_at = 0.0
        self.lock = asyncio.Lock()
        self.tasks: set[asyncio.Task[None]] = set()

    @property
    def seconds(self) -> float:
        """Seconds of audio received."""
        return self.received / 2 / SAMPLE_RATE

    async def feed(self, pcm16: bytes) -> None:
        """More audio."""
        data = self.pending + pcm16
        whole = len(data) - len(data) % self.frame
        self.pending = data[whole:]
        self.received += whole
        for start in range(0, whole, self.frame):
            await self._frame(data[start : start + self.frame])

    async def _frame(self, frame: bytes) -> None:
        samples = np.frombuffer(frame, dtype="<i2").astype(np.float32) / 32768.0
        loud = float(np.sqrt(np.mean(samples * samples))) >= SPEECH_RMS
        if not self.in_speech:
            self.preroll += frame
            del self.preroll[: max(0, len(self.preroll) - (PREROLL_MS // FRAME_MS + self.start_frames) * self.frame)]
            self.loud = self.loud + 1 if loud else 0
            if self.loud >= self.start_frames:
                self.in_speech, self.quiet = True, 0
                self.utterance = bytearray(self.preroll)
                self.preroll.clear()
                self.utterances += 1
                await self.emit({"type": "speech_started", "utterance": self.utterances, "at": round(self.seconds, 3)})
            return
        self.utterance += frame
        self.quiet = 0 if loud else self.quiet + 1
        if self.quiet >= self.silence_frames or len(self.utterance) / 2 / SAMPLE_RATE >= MAX_UTTERANCE_S:
            await self.commit()

    async def commit(self) -> None:
        """End the current utterance now (silence, push-to-talk release, or the length limit)."""
        if not self.in_speech and not self.utterance:
            if self.preroll and self.loud:  # a push-to-talk clip shorter than the start threshold
                self.utterance = bytearray(self.preroll)
                self.utterances += 1
            else:
                return
        audio, self.utterance = bytes(self.utterance), bytearray()
        self.in_speech, self.loud, self.quiet = False, 0, 0
        number = self.utterances
        stopped = time.perf_counter()
        await self.emit({"type": "speech_stopped", "utterance": number, "at": round(self.seconds, 3)})
        task = asyncio.create_task(self._transcribe(number, audio, stopped))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _transcribe(self, number: int, audio: bytes, stopped: float) -> None:
        async with self.lock:  # finals in utterance order
            started = utc_now()
            try:
                wav = wav_header(SAMPLE_RATE, len(audio)) + audio
                result: TranscribeResponse = await brokers.transcribe(
                    self.gateway.stt,
                    io.BytesIO(wav),
                    filename="utterance.wav",
                    content_type="audio/wav",
                    language=self.language,
                )
            except VoicestackError as exc:
                await self.emit({"type": "error", "error": {"code": exc.code, "message": exc.message}})
                return
            self.gateway.events.transcribed(
                started,
                self.session_id,
                text=result.text,
                seconds=result.duration_seconds,
                language=result.language,
                model=result.model,
                confidence=result.confidence,
            )
            await self.emit(
                {
                    "type": "final",
                    "utterance": number,
                    "text": result.text.strip(),
                    "language": result.language,
                    "confidence": result.confidence,
                    "duration_seconds": result.duration_seconds,
                    "model": result.model,
                    "transcribe_ms": round((time.perf_counter() - stopped) * 1000, 1),
                }
            )

    async def aclose(self) -> None:
        """Stop transcriptions still running."""
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
