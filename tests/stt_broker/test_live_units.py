"""The live core's parts on their own: streaming VAD, incremental decoders, agreement, buffer, back-pressure."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from devkit.live_audio import SENTENCES, pcm16_slices, recorder_slices, speech_with_pauses
from devkit.speech import words
from stt_broker.engines import engine_factory
from stt_broker.engines.base import SttEngine, TranscribeOptions, Transcript
from stt_broker.live.agreement import LocalAgreement
from stt_broker.live.buffer import AudioBuffer
from stt_broker.live.decoders import AudioInput
from stt_broker.live.runtime import LiveConfig, LiveMetrics, LiveRuntime
from stt_broker.live.session import LiveEvent, LiveSession
from stt_broker.live.turn import TurnModel, prepare_turn_model
from stt_broker.live.vad import WINDOW, StreamingVad, load_silero
from stt_broker.models import resolve_model
from stt_broker.settings import SttSettings
from tests.stt_broker.conftest import stt_settings
from voicestack_common.live import StartMessage
from voicestack_common.workers import WorkerPool


def test_streaming_vad_equals_the_batch_model() -> None:
    from faster_whisper.vad import get_vad_model

    samples = speech_with_pauses(SENTENCES[:1]).pcm.samples
    samples = samples[: len(samples) // WINDOW * WINDOW]
    batch = get_vad_model()(samples)
    vad = StreamingVad(load_silero())
    rng = np.random.default_rng(1)
    streamed, position = [], 0
    while position < len(samples):
        size = int(rng.integers(1, 3000))
        streamed.append(vad.feed(samples[position : position + size])[0])
        position += size
    np.testing.assert_allclose(np.concatenate(streamed), np.asarray(batch).reshape(-1), atol=1e-4)


@pytest.mark.parametrize("fmt", ["webm", "ogg"])
def test_container_decoding_is_incremental_and_slice_independent(fmt: str) -> None:
    speech = speech_with_pauses(SENTENCES[:1])
    data = b"".join(recorder_slices(speech.pcm, fmt))
    whole = AudioInput(fmt).feed(data)  # type: ignore[arg-type]
    sliced_input = AudioInput(fmt)  # type: ignore[arg-type]
    pieces = [sliced_input.feed(data[i : i + 37]) for i in range(0, len(data), 37)]
    np.testing.assert_allclose(np.concatenate(pieces), whole, atol=1e-6)
    assert abs(len(whole) / 16000 - speech.pcm.duration) < 0.05
    assert sliced_input.pending == 0
    assert sliced_input.header_bytes > 0
    # A replay from the header plus a later packet decodes the rest of the stream.
    point = sliced_input.sync_point(len(whole) // 2)
    assert point is not None
    assert point.offset > sliced_input.header_bytes
    replay = AudioInput(fmt)  # type: ignore[arg-type]
    tail = replay.feed(data[: sliced_input.header_bytes] + data[point.offset :])
    assert abs(len(tail) - (len(whole) - point.sample)) < 960


def test_pcm_and_wav_inputs_resample_once() -> None:
    speech = speech_with_pauses(SENTENCES[:1])
    frames = pcm16_slices(speech.pcm, 30, rate=44100, channels=2)
    pcm = AudioInput("pcm16", 44100, 2)
    out = np.concatenate([pcm.feed(f[:7]) for f in frames] + [pcm.feed(f[7:]) for f in []])
    assert out.dtype == np.float32
    from voicestack_common.encode import encode_audio

    wav = encode_audio(speech.pcm, "wav")
    wav_input = AudioInput("wav")
    samples = np.concatenate([wav_input.feed(wav[i : i + 501]) for i in range(0, len(wav), 501)])
    assert len(samples) == len(speech.pcm.samples)
    assert wav_input.header_bytes == 44


def test_local_agreement_only_grows_the_stable_prefix() -> None:
    agreement = LocalAgreement()
    assert agreement.update("the quick") == ("", "the quick")
    assert agreement.update("the quick brown") == ("the quick", "brown")
    assert agreement.update("The quick, brown fox") == ("the quick brown", "fox")
    assert agreement.update("the quack brown fox jumps") == ("the quick brown", "fox jumps")


def test_audio_buffer_drops_from_the_front() -> None:
    buffer = AudioBuffer()
    for i in range(10):
        buffer.append(np.full(100, i, np.float32))
    buffer.drop_before(250)
    assert buffer.start == 250
    assert buffer.read(0, 300).tolist() == [2.0] * 50
    assert buffer.read(950, 2000).tolist() == [9.0] * 50


@pytest.mark.engine
@contextlib.asynccontextmanager
async def live_runtime(
    settings: SttSettings,
    *,
    workers: int,
    max_queue: int,
    kind: type[LiveRuntime] = LiveRuntime,
    config: LiveConfig | None = None,
    turn_model: TurnModel | None = None,
) -> AsyncIterator[tuple[LiveRuntime, WorkerPool[SttEngine]]]:
    """A live runtime and a real whisper.cpp pool of ``workers`` contexts for its sessions, closed afterwards."""
    from prometheus_client import CollectorRegistry

    pool = WorkerPool("stt", engine_factory(settings, resolve_model(settings)), size=workers, max_queue=max_queue)
    await asyncio.to_thread(pool.start)
    try:
        # Sessions made here get the pool directly: the runtime's catalog is never asked.
        yield (
            kind(
                None,  # type: ignore[arg-type]
                lambda model, language: "tiny.en",
                load_silero(),
                LiveMetrics(CollectorRegistry()),
                config or LiveConfig(),
                default_language=None,
                turn_model=turn_model,
            ),
            pool,
        )
    finally:
        await asyncio.to_thread(pool.close)


def test_a_client_faster_than_the_engine_is_held_back(model_cache: Path) -> None:
    """Back-pressure: with two finals pending the session stops taking audio until events drain."""
    settings = stt_settings(model_cache)
    speech = speech_with_pauses()

    async def scenario() -> None:
        async with live_runtime(settings, workers=1, max_queue=1) as (runtime, pool):
            session = LiveSession(runtime, StartMessage(partials=False), pool=pool, model="tiny.en")
            session.feed(speech.pcm.to_pcm16())  # three utterances at once
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(session.writable(), 0.05)
            kinds = []
            while len([k for k in kinds if k == "final"]) < 3:
                kinds.append((await session.next_event()).type)
            await asyncio.wait_for(session.writable(), 5)
            await session.stop()
            assert (await session.next_event()).type == "closed"
            assert kinds.count("speech_stopped") == 3

    asyncio.run(scenario())


@pytest.mark.parametrize("fit_finals", [True, False])
def test_partials_decode_with_a_fitted_context_and_finals_as_configured(model_cache: Path, fit_finals: bool) -> None:
    settings = stt_settings(model_cache)
    speech = speech_with_pauses(SENTENCES[:1])
    decodes: list[tuple[bool, bool]] = []  # (urgent, fit_context) of every decode

    class Recording(LiveRuntime):
        async def decode(
            self,
            pool: WorkerPool[SttEngine],
            samples: np.ndarray,
            options: TranscribeOptions,
            *,
            urgent: bool,
            released: asyncio.Event | None = None,
        ) -> tuple[Transcript, float]:
            decodes.append((urgent, options.fit_context))
            return await super().decode(pool, samples, options, urgent=urgent, released=released)

    async def scenario() -> list[LiveEvent]:
        config = LiveConfig(fit_finals=fit_finals)
        async with live_runtime(settings, workers=2, max_queue=4, kind=Recording, config=config) as (runtime, pool):
            session = LiveSession(runtime, StartMessage(partials=True), pool=pool, model="tiny.en")
            for piece in pcm16_slices(speech.pcm, 200):
                session.feed(piece)
                await asyncio.sleep(0.05)
            await session.stop()
            events = [await session.next_event()]
            while events[-1].type != "closed":
                events.append(await asyncio.wait_for(session.next_event(), 60))
            return events

    events = asyncio.run(scenario())
    finals = [e for e in events if e.type == "final"]
    assert [words(f.text) for f in finals] == [words(SENTENCES[0])]  # type: ignore[attr-defined]
    assert (False, True) in decodes  # at least one partial, fitted
    # the final (and any decode started at a pause): fitted to the utterance, or the whole 30 s window
    assert {fit for urgent, fit in decodes if urgent} == {fit_finals}


def test_a_long_session_holds_bounded_memory() -> None:
    """Ten minutes of PCM leave less than a second of audio and a couple of input positions held."""
    from prometheus_client import CollectorRegistry

    class NoPool:
        has_idle_worker = False

    runtime = LiveRuntime(
        None,  # type: ignore[arg-type]
        lambda model, language: "none",
        load_silero(),
        LiveMetrics(CollectorRegistry()),
        LiveConfig(),
        default_language=None,
    )

    async def scenario() -> None:
        session = LiveSession(
            runtime,
            StartMessage(partials=False, checkpoints=True),
            pool=NoPool(),  # type: ignore[arg-type]
            model="none",
        )
        for index in range(600):
            session.feed(bytes(32000))
            assert session.held_seconds < 1.0
            assert session.audio_seconds == index + 1
        assert session._input.sync_points <= 2
        checkpoints = []
        while (event := session.pending_event()) is not None:
            checkpoints.append(event)
        assert len(checkpoints) > 500  # a relay could trim its replay log every second
        session.close()

    asyncio.run(scenario())


ORDER = ("I'd like to order a", "large pizza with mushrooms.")  # a pause in the middle of a turn
VOICE = "jf_alpha"  # the model hears this voice's English well (jm_kumo's unfinished phrases sound finished to it)


def _turn_model(model_cache: Path) -> TurnModel:
    return TurnModel(prepare_turn_model(model_cache))


def _count(runtime: LiveRuntime, name: str, **labels: str) -> float:
    counter = getattr(runtime.metrics, name)
    value = counter.labels(*labels.values())._value.get()
    assert isinstance(value, float)
    return value


def test_the_turn_model_tells_a_finished_question_from_an_unfinished_one(model_cache: Path) -> None:
    model = _turn_model(model_cache)
    for text, finished in [("What is the weather like in Paris today?", True), ("So I was thinking that", False)]:
        speech = speech_with_pauses((text,), pause_s=0.25, voice=VOICE)
        assert model.complete(speech.pcm.samples) is finished, text
    # it hears the last 8 s, with silence in front of a shorter clip
    clip = speech_with_pauses(("So I was thinking that",) * 6, voice=VOICE).pcm.samples
    assert len(clip) > 8 * 16_000
    assert np.array_equal(model.features(clip), model.features(clip[-8 * 16_000 :]))
    short = clip[:16_000]
    padded = np.concatenate([np.zeros(8 * 16_000 - len(short), np.float32), short])
    assert np.array_equal(model.features(short), model.features(padded))
    assert not np.array_equal(model.features(short), model.features(clip))


@pytest.mark.parametrize("end_of_turn", ["model", "silence"])
def test_end_of_turn_by_model_waits_through_a_mid_turn_pause_and_ends_at_the_last(
    model_cache: Path, end_of_turn: str
) -> None:
    """The model hears "I'd like to order a" as unfinished and holds the utterance through a 0.9 s pause
    (the silence rule, at 600 ms, cuts it in two); at the end it hears a finished turn and ends the utterance
    at once, long before its 5 s cap, with the decode that started at the pause as the final."""
    settings = stt_settings(model_cache)
    speech = speech_with_pauses(ORDER, pause_s=0.9, voice=VOICE)
    first_pause = int((speech.spans[0][1] + 0.9) * 16_000) * 2  # bytes of PCM16 up to the second part
    data = pcm16_slices(speech.pcm, 20)
    config = LiveConfig(end_of_turn="model", silence_ms=600, turn_max_silence_ms=5_000)

    async def scenario() -> tuple[list[LiveEvent], LiveRuntime]:
        async with live_runtime(
            settings, workers=2, max_queue=4, config=config, turn_model=_turn_model(model_cache)
        ) as (runtime, pool):
            start = StartMessage(partials=False, end_of_turn=end_of_turn)  # type: ignore[arg-type]
            session = LiveSession(runtime, start, pool=pool, model="tiny.en")
            assert session.settings.end_of_turn == end_of_turn
            fed = 0
            for piece in data:
                session.feed(piece)
                fed += len(piece)
                if fed >= first_pause - len(piece) and fed < first_pause and end_of_turn == "model":
                    # let the model answer inside the pause (whatever the machine's load)
                    for _ in range(600):
                        if _count(runtime, "turn_checks", verdict="incomplete") >= 1:
                            break
                        await asyncio.sleep(0.05)
                await asyncio.sleep(0)
            events: list[LiveEvent] = []
            if end_of_turn == "model":
                # 1.5 s of trailing silence is under the 5 s cap: only the model's "finished" ends it
                while not events or events[-1].type != "final":
                    events.append(await asyncio.wait_for(session.next_event(), 60))
                assert _count(runtime, "early_decodes", fate="used") == 1
            await session.stop()
            while not events or events[-1].type != "closed":
                events.append(await asyncio.wait_for(session.next_event(), 60))
            return events, runtime

    events, runtime = asyncio.run(scenario())
    finals = [words(e.text) for e in events if e.type == "final"]  # type: ignore[attr-defined]
    if end_of_turn == "model":
        assert _count(runtime, "turn_checks", verdict="incomplete") >= 1
        assert _count(runtime, "turn_checks", verdict="complete") >= 1
        assert len(finals) == 1
        assert {"order", "pizza", "mushrooms"} <= set(finals[0])
    else:
        assert len(finals) == 2
        assert "order" in finals[0]
        assert "pizza" in finals[1]


def test_without_a_turn_model_sessions_end_on_silence(model_cache: Path) -> None:
    settings = stt_settings(model_cache)

    async def scenario() -> None:
        async with live_runtime(settings, workers=1, max_queue=1, config=LiveConfig(end_of_turn="model")) as (
            runtime,
            pool,
        ):
            session = LiveSession(runtime, StartMessage(end_of_turn="model"), pool=pool, model="tiny.en")
            assert session.settings.end_of_turn == "silence"
            session.close()

    asyncio.run(scenario())
