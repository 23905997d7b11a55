"""One live transcription session, independent of any transport.

A face (the broker's WebSocket, the Realtime API) creates a ``LiveSession``
from a ``StartMessage``, hands it audio bytes and control calls
(``feed``/``commit``/``clear``/``stop``), and sends whatever ``next_event``
returns. The session decodes the input incrementally, scores it with a
streaming VAD, keeps the open utterance, decodes partials on a cadence (only
when a context is free) and finals at each endpoint (ahead of other work),
and emits typed events in order. Audio before the open utterance is dropped,
so memory stays bounded however long the session runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections import deque
from dataclasses import dataclass

from stt_broker.engines.base import SttEngine, TranscribeOptions, Transcript
from stt_broker.live.agreement import LocalAgreement
from stt_broker.live.buffer import AudioBuffer
from stt_broker.live.decoders import AudioInput
from stt_broker.live.runtime import LiveRuntime
from stt_broker.live.vad import WINDOW, StreamingVad
from stt_broker.transcriber import confidence
from voicestack_common.audio import STT_SAMPLE_RATE, Samples
from voicestack_common.errors import VoicestackError
from voicestack_common.live import (
    Checkpoint,
    Closed,
    ErrorEvent,
    Final,
    LiveSegment,
    LiveWord,
    Partial,
    Ready,
    SessionSettings,
    SpeechStarted,
    SpeechStopped,
    StartMessage,
    error_event,
)
from voicestack_common.workers import WorkerPool

logger = logging.getLogger(__name__)

LiveEvent = Ready | SpeechStarted | Partial | SpeechStopped | Final | ErrorEvent | Checkpoint | Closed
# Probability below threshold - this counts as silence (Silero's own hysteresis).
_HYSTERESIS = 0.15
# The longest the pause's decode waits for a cancelled partial to let go of its context's threads.
_PARTIAL_RELEASE_WAIT_S = 0.3
# Idle sessions report a checkpoint at most this often (relays trim their replay log by it).
_CHECKPOINT_EVERY = STT_SAMPLE_RATE


def _ms(ms: int) -> int:
    return ms * STT_SAMPLE_RATE // 1000


@dataclass(eq=False)
class _EarlyDecode:
    """The open utterance's decode, started at a pause: its final, unless the speaker goes on."""

    utterance: int
    end: int
    """The last sample it decodes: the last speech plus the end padding."""
    last_speech_end: int
    """Where speech last stopped when it started: the same at the endpoint means nothing was said since."""
    task: asyncio.Task[tuple[Transcript, float]]


class LiveSession:
    """Audio in, ``speech_started``/``partial``/``speech_stopped``/``final`` out."""

    def __init__(self, runtime: LiveRuntime, start: StartMessage, *, pool: WorkerPool[SttEngine], model: str) -> None:
        d = runtime.config
        self.runtime = runtime
        self.pool = pool
        """The chosen model's pool; the face holds it (``ModelRegistry.use``) for the session's life."""
        self.model = model
        self.id = start.session_id or uuid.uuid4().hex
        self.settings = SessionSettings(
            format=start.format,
            sample_rate=start.sample_rate,
            channels=start.channels,
            language=start.language or runtime.default_language,
            partials=start.partials,
            words=start.words,
            vad=start.vad,
            silence_ms=start.silence_ms or d.silence_ms,
            # Without a turn model there is only the silence rule, whatever the session asks.
            end_of_turn=(start.end_of_turn or d.end_of_turn) if runtime.turn_model is not None else "silence",
            vad_threshold=start.vad_threshold or d.vad_threshold,
            prefix_padding_ms=d.prefix_padding_ms if start.prefix_padding_ms is None else start.prefix_padding_ms,
            partial_interval_ms=d.partial_interval_ms,
            max_utterance_seconds=d.max_utterance_seconds,
        )
        self._options = TranscribeOptions(
            language=self.settings.language, prompt=start.prompt, word_timestamps=start.words
        )
        self._partial_options = dataclasses.replace(self._options, fit_context=d.fit_partials)
        self._final_options = dataclasses.replace(self._options, fit_context=d.fit_finals)
        self._checkpoints = start.checkpoints
        self._t0 = start.resume_at or 0.0
        self._input = AudioInput(start.format, start.sample_rate, start.channels)
        self._vad = StreamingVad(runtime.vad_session)
        self._buffer = AudioBuffer()
        self._windows = 0  # VAD windows scored so far
        self._probs: deque[tuple[int, float, float]] = deque()  # (window, probability, rms) of the open utterance
        self._next_id = start.next_utterance or 1
        self._utterance: int | None = None
        self._utterance_start = 0
        self._speech_run = 0
        self._silence_run = 0
        self._last_speech_end = 0
        self._last_partial_mark = 0
        self._last_partial_time: float | None = None
        self._agreement = LocalAgreement()
        self._partial: asyncio.Task[None] | None = None
        self._partial_of = 0  # the utterance of the partial in flight
        self._partial_released = asyncio.Event()  # set while no partial decode holds a context's threads
        self._partial_released.set()
        # At each pause of the open utterance: its decode starts, and the turn model is asked.
        self._paused = False
        self._early: _EarlyDecode | None = None
        self._turn_check: asyncio.Task[None] | None = None
        self._silence_limit = self._default_silence_limit()
        self._last_final = 0  # the newest utterance whose final is out
        self._finals: deque[tuple[int, int, asyncio.Task[None]]] = deque()  # (utterance, start sample, task)
        self._last_checkpoint = (0, self._next_id)
        self.utterances = 0
        self._events: asyncio.Queue[LiveEvent] = asyncio.Queue()
        self._room = asyncio.Event()
        self._room.set()
        self.finished = False
        runtime.metrics.active.inc()
        runtime.open_sessions += 1
        self._active = True
        self._emit(Ready(session_id=self.id, model=model, settings=self.settings))

    # -- the face's side -------------------------------------------------------------------------

    async def next_event(self) -> LiveEvent:
        """The next event to send (waits for one)."""
        event = await self._events.get()
        self._update_room()
        return event

    def pending_event(self) -> LiveEvent | None:
        """The next event if one is ready, else ``None``."""
        try:
            event = self._events.get_nowait()
        except asyncio.QueueEmpty:
            return None
        self._update_room()
        return event

    async def writable(self) -> None:
        """Wait until the session may take more audio (finals and events have drained enough)."""
        while not self._has_room():
            self._room.clear()
            await self._room.wait()

    @property
    def decoding(self) -> bool:
        """Whether a final is still being decoded: the client is waiting on the server, not idle."""
        return any(not task.done() for _, _, task in self._finals)

    @property
    def audio_seconds(self) -> float:
        """Seconds of audio received."""
        return self._input.samples_out / STT_SAMPLE_RATE

    @property
    def held_seconds(self) -> float:
        """Seconds of audio the session holds (the open utterance, or the prefix padding)."""
        return (self._buffer.end - self._buffer.start) / STT_SAMPLE_RATE

    def feed(self, data: bytes) -> None:
        """Take a slice of input bytes (raises ``AudioError`` on input that cannot be decoded)."""
        if self.finished:
            return
        samples = self._input.feed(data)
        if not len(samples):
            return
        self.runtime.metrics.audio_seconds.inc(len(samples) / STT_SAMPLE_RATE)
        self._buffer.append(samples)
        if not self.settings.vad and self._utterance is None:
            self._open(self._buffer.end - len(samples))
        probs, levels = self._vad.feed(samples)
        for prob, level in zip(probs.tolist(), levels.tolist(), strict=True):
            self._window(prob, level)
        if self._utterance is None:
            self._trim_idle()
        else:
            self._maybe_partial()

    def warn(self, code: str, message: str) -> None:
        """A non-fatal ``error`` event (a bad message from the client); the session goes on."""
        self._emit(error_event(code, message))

    def commit(self) -> None:
        """End the open utterance now."""
        if self._utterance is None:
            self._emit(error_event("nothing_to_commit", "no speech is open to commit"))
            return
        self._endpoint(self._buffer.end)

    def clear(self) -> None:
        """Drop the open utterance's audio (no final for it)."""
        self._cancel_partial()
        self._resume()
        self._utterance = None
        self._speech_run = self._silence_run = 0
        self._probs.clear()
        self._trim_idle()

    async def stop(self) -> None:
        """End the open utterance, wait for every final, then emit ``closed``."""
        if self.finished:
            return
        if self._input.pending:
            self._emit(
                error_event(
                    "truncated_audio", f"the stream ended inside a {self.settings.format} unit; the rest is ignored"
                )
            )
        if self._utterance is not None:
            self._endpoint(self._buffer.end)
        await self._drain_finals()
        self._finish("stop")

    def fail(self, code: str, message: str) -> None:
        """A fatal error: emit it and ``closed``; the face closes the socket."""
        if self.finished:
            return
        self._emit(error_event(code, message, fatal=True))
        self._finish(code)

    def close(self) -> None:
        """Release everything (the client left): running decodes are cancelled, not awaited."""
        self._cancel_partial()
        self._resume()
        for _, _, task in self._finals:
            task.cancel()
        self._finals.clear()
        self.finished = True
        if self._active:
            self._active = False
            self.runtime.metrics.active.dec()
            self.runtime.open_sessions -= 1

    # -- voice activity and endpointing ----------------------------------------------------------

    def _window(self, prob: float, rms: float) -> None:
        index = self._windows
        self._windows += 1
        end = (index + 1) * WINDOW
        threshold = self.settings.vad_threshold
        if self._utterance is None:
            self._speech_run = self._speech_run + 1 if prob >= threshold else 0
            if self.settings.vad and self._speech_run * WINDOW >= _ms(self.runtime.config.min_speech_ms):
                onset = end - self._speech_run * WINDOW
                self._open(max(onset - _ms(self.settings.prefix_padding_ms), self._buffer.start))
                self._last_speech_end = end
            return
        self._probs.append((index, prob, rms))
        if prob >= threshold:
            self._silence_run = 0
            self._last_speech_end = end
            self._resume()
        elif prob < threshold - _HYSTERESIS:
            self._silence_run += 1
        silence = self._silence_run * WINDOW
        if self.settings.vad and not self._paused and silence >= _ms(self.runtime.config.turn_pause_ms):
            self._pause(end)
        if self.settings.vad and silence >= _ms(self._silence_limit):
            self._endpoint(min(self._last_speech_end + _ms(self.runtime.config.end_padding_ms), end))
        elif end - self._utterance_start >= self.settings.max_utterance_seconds * STT_SAMPLE_RATE:
            self._cut(end)

    def _default_silence_limit(self) -> int:
        """The silence that ends the utterance before (or without) the turn model's answer."""
        if self.settings.end_of_turn == "model":
            return self.runtime.config.turn_max_silence_ms
        return self.settings.silence_ms

    def _pause(self, end: int) -> None:
        """A pause in the open utterance: decode it as it stands, and ask the turn model whether it is over."""
        assert self._utterance is not None
        self._paused = True
        stop = min(self._last_speech_end + _ms(self.runtime.config.end_padding_ms), end)
        self._cancel_partial()  # the early decode covers more; the cores are better spent on it
        task = asyncio.ensure_future(self._decode_early(self._buffer.read(self._utterance_start, stop)))
        self._early = _EarlyDecode(self._utterance, stop, self._last_speech_end, task)
        self._ask(end)

    async def _decode_early(self, audio: Samples) -> tuple[Transcript, float]:
        # A partial cancelled just now holds its threads until its encoder pass ends: started beside it,
        # this decode would get one thread (elastic threads) for its whole length. A short wait is cheaper.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._partial_released.wait(), _PARTIAL_RELEASE_WAIT_S)
        return await self.runtime.decode(self.pool, audio, self._final_options, urgent=True)

    def _ask(self, end: int) -> None:
        """Ask the turn model (``end_of_turn=model``) whether the utterance, heard up to ``end``, is over."""
        if self.settings.end_of_turn != "model" or self._utterance is None:
            return
        heard = self._buffer.read(self._utterance_start, end)
        self._turn_check = asyncio.ensure_future(self._ask_turn(self._utterance, heard))

    async def _ask_turn(self, utterance: int, heard: Samples) -> None:
        complete = await self.runtime.turn_complete(heard)
        if self._utterance != utterance or not self._paused or self.finished:
            return  # the speaker went on, or the utterance ended meanwhile
        self._turn_check = None
        if complete is None:  # no answer: the silence rule decides
            self._silence_limit = self.settings.silence_ms
        elif complete:
            self._endpoint(self._buffer.end)
            return
        if self._silence_run * WINDOW >= _ms(self._silence_limit):
            self._endpoint(self._buffer.end)

    def _resume(self) -> None:
        """Speech goes on after a pause, or the utterance ends or is dropped: the pause's question lapses, and
        its decode too unless the ending took it as the final."""
        if not self._paused:
            return
        self._paused = False
        self._silence_limit = self._default_silence_limit()
        if self._turn_check is not None:
            self._turn_check.cancel()
            self._turn_check = None
        if self._early is not None:
            self._early.task.cancel()
            self._early = None
            self.runtime.metrics.early_decodes.labels("dropped").inc()

    def _open(self, start: int) -> None:
        self._utterance = self._next_id
        self._next_id += 1
        self._utterance_start = start
        self._last_partial_mark = start
        self._last_partial_time = None
        self._silence_run = 0
        self._probs.clear()
        self._agreement = LocalAgreement()
        self._resume()
        self._emit(SpeechStarted(utterance_id=self._utterance, start=self._time(start)))

    def _cut(self, end: int) -> None:
        """The utterance is at its length limit: end it at the quietest point of its last third."""
        earliest = self._utterance_start + (end - self._utterance_start) * 2 // 3
        candidates = [(p, rms, w) for w, p, rms in self._probs if w * WINDOW >= earliest]
        if candidates:
            _, _, window = min(candidates)
            cut = window * WINDOW + WINDOW // 2
        else:
            cut = end
        self._endpoint(cut, trim=False)
        self._open(cut)
        self._last_speech_end = end

    def _endpoint(self, end: int, *, trim: bool = True) -> None:
        utterance, start = self._utterance, self._utterance_start
        if utterance is None:
            return
        # A partial still decoding is stale once its utterance ends: stop it, so the final has the
        # cores (left running on another context, it cost the final ~0.3 s at one conversation).
        self._cancel_partial()
        early = self._early
        if early is not None and trim and early.last_speech_end == self._last_speech_end:
            # Nothing was said since the pause: the decode that started there is this utterance's final.
            self._early = None
            end = early.end
            self.runtime.metrics.early_decodes.labels("used").inc()
        else:
            early = None
        self._resume()
        self._utterance = None
        self._speech_run = 0
        self._probs.clear()
        audio = self._buffer.read(start, end)
        self._emit(SpeechStopped(utterance_id=utterance, end=self._time(end)))
        self.utterances += 1
        previous = self._finals[-1][2] if self._finals else None
        decoding = early.task if early is not None else None
        task = asyncio.ensure_future(self._final(utterance, start, end, audio, previous, time.perf_counter(), decoding))
        self._finals.append((utterance, start, task))
        task.add_done_callback(lambda _: self._final_done())
        self._update_room()
        if trim:
            self._trim_idle()

    def _trim_idle(self) -> None:
        """Keep only the prefix padding before the next utterance (and what a pending final needs)."""
        if self._utterance is not None:
            return
        keep = self._buffer.end - _ms(self.settings.prefix_padding_ms) - WINDOW
        self._buffer.drop_before(keep)
        self._checkpoint()

    # -- decoding --------------------------------------------------------------------------------

    def _maybe_partial(self) -> None:
        if not self.settings.partials or self._utterance is None:
            return
        if self._buffer.end - self._last_partial_mark < _ms(self.settings.partial_interval_ms):
            return
        self._last_partial_mark = self._buffer.end
        if self._partial is not None and not self._partial.done():
            self.runtime.metrics.partials_skipped.labels("in_flight").inc()
            return
        if not self.pool.has_idle_worker or self._finals or self._early is not None:
            self.runtime.metrics.partials_skipped.labels("busy").inc()
            return
        audio = self._buffer.read(self._utterance_start, self._buffer.end)
        self._partial_of = self._utterance
        self._partial_released.clear()
        self._partial = asyncio.ensure_future(
            self._decode_partial(self._utterance, self._utterance_start, self._buffer.end, audio, self._agreement)
        )

    async def _decode_partial(
        self, utterance: int, start: int, end: int, audio: Samples, agreement: LocalAgreement
    ) -> None:
        try:
            transcript, _ = await self.runtime.decode(
                self.pool, audio, self._partial_options, urgent=False, released=self._partial_released
            )
        except VoicestackError as exc:
            logger.debug("partial skipped: %s", exc.code)
            self.runtime.metrics.partials_skipped.labels(exc.code).inc()
            return
        if utterance <= self._last_final or self.finished or not transcript.text:
            return  # its final is out: the partial is stale
        stable, unstable = agreement.update(transcript.text)
        now = time.perf_counter()
        if self._last_partial_time is not None:
            self.runtime.metrics.partial_interval.observe(now - self._last_partial_time)
        self._last_partial_time = now
        self.runtime.metrics.partials.inc()
        self._emit(
            Partial(
                utterance_id=utterance,
                text=transcript.text,
                stable=stable,
                unstable=unstable,
                start=self._time(start),
                end=self._time(end),
            )
        )

    async def _final(
        self,
        utterance: int,
        start: int,
        end: int,
        audio: Samples,
        previous: asyncio.Task[None] | None,
        ended: float,
        decoding: asyncio.Task[tuple[Transcript, float]] | None = None,
    ) -> None:
        """Decode the utterance (or await the decode its pause started) and emit its final, in order."""
        event: LiveEvent
        try:
            transcript: Transcript | None = None
            if decoding is not None:
                with contextlib.suppress(VoicestackError):  # a failed early decode gets one more try
                    transcript, _ = await decoding
            if transcript is None:
                transcript, _ = await self.runtime.decode(self.pool, audio, self._final_options, urgent=True)
            event = self._final_event(utterance, start, end, transcript)
            outcome = "ok" if transcript.text else "empty"
        except VoicestackError as exc:
            event = error_event(exc.code, exc.message, utterance_id=utterance)
            outcome = exc.code
        if previous is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(previous)
        self.runtime.metrics.final_latency.observe(time.perf_counter() - ended)
        self.runtime.metrics.finals.labels(outcome).inc()
        self._last_final = utterance
        self._emit(event)
        if self._partial_of <= utterance:
            self._cancel_partial()  # stale now: its utterance's final is out

    def _final_event(self, utterance: int, start: int, end: int, transcript: Transcript) -> Final:
        offset = self._time(start)
        limit = self._time(end)

        def at(t: float) -> float:
            return round(min(offset + t, limit), 3)

        words = None
        if self.settings.words:
            words = [
                LiveWord(word=w.word, start=at(w.start), end=at(w.end), probability=round(w.probability, 4))
                for s in transcript.segments
                for w in s.words
            ]
        return Final(
            utterance_id=utterance,
            text=transcript.text,
            start=offset,
            end=limit,
            segments=[
                LiveSegment(start=at(s.start), end=at(s.end), text=s.text) for s in transcript.segments if s.text
            ],
            words=words,
            confidence=confidence(transcript),
            language=transcript.language,
        )

    def _final_done(self) -> None:
        while self._finals and self._finals[0][2].done():
            self._finals.popleft()
        self._checkpoint()
        self._update_room()

    async def _drain_finals(self) -> None:
        while self._finals:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._finals[-1][2])
            self._final_done()

    def _cancel_partial(self) -> None:
        if self._partial is not None and not self._partial.done():
            self._partial.cancel()
        self._partial = None

    # -- bookkeeping -----------------------------------------------------------------------------

    def _time(self, sample: int) -> float:
        return round(self._t0 + sample / STT_SAMPLE_RATE, 3)

    def _checkpoint(self) -> None:
        """Forget input positions no replay can need; tell a relay (when it asked) where replay starts."""
        needed = self._finals[0][1] if self._finals else self._buffer.start
        if self._utterance is not None:
            needed = min(needed, self._utterance_start)
        point = self._input.sync_point(needed)
        if not self._checkpoints or point is None:
            return
        next_utterance = self._finals[0][0] if self._finals else (self._utterance or self._next_id)
        moved = point.sample - self._last_checkpoint[0]
        if (next_utterance != self._last_checkpoint[1] and moved >= 0) or moved >= _CHECKPOINT_EVERY:
            self._last_checkpoint = (point.sample, next_utterance)
            self._emit(
                Checkpoint(
                    offset=point.offset,
                    time=self._time(point.sample),
                    header_bytes=self._input.header_bytes,
                    next_utterance=next_utterance,
                )
            )

    def _finish(self, reason: str) -> None:
        self._emit(Closed(audio_seconds=round(self.audio_seconds, 3), utterances=self.utterances, reason=reason))
        self.runtime.metrics.sessions.labels(reason).inc()
        self.close()

    def _emit(self, event: LiveEvent) -> None:
        if self.finished:
            return
        self._events.put_nowait(event)
        self._update_room()

    def _has_room(self) -> bool:
        d = self.runtime.config
        return len(self._finals) < d.max_pending_finals and self._events.qsize() < d.max_pending_events

    def _update_room(self) -> None:
        if self._has_room():
            self._room.set()
