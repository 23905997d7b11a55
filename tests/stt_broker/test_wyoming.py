"""The STT broker's Wyoming server, driven by the ``wyoming`` package's client, on whisper.cpp tiny.en."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from wyoming.asr import Transcribe, Transcript, TranscriptChunk
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info

from devkit.servers import free_port, serve
from devkit.speech import words
from devkit.wyoming_kit import audio_events, client, closed, metric, read_until, run, send_all, wait_for
from stt_broker.app import create_app
from tests.stt_broker.conftest import stt_settings
from voicestack_common.audio import Pcm, resample

pytestmark = [pytest.mark.engine, pytest.mark.slow]


@pytest.fixture(scope="module")
def broker(model_cache: Path) -> Iterator[tuple[str, int]]:
    """One whisper.cpp context and no queue, so that a second request at once is refused; Wyoming on."""
    port = free_port()
    settings = stt_settings(model_cache, workers=1, max_queue=0, wyoming_enabled=True, wyoming_port=port)
    with serve(create_app(settings)) as url:
        yield url, port


async def transcribe(port: int, events: list[Event]) -> list[Event]:
    async with client(port) as conn:
        await send_all(conn, events)
        return await read_until(conn, "transcript-stop")


def test_describe(broker: tuple[str, int]) -> None:
    async def describe() -> Event:
        async with client(broker[1]) as conn:
            await conn.write_event(Describe().event())
            return await read_until(conn, "info")

    info = Info.from_event(run(describe())[-1])
    (program,) = info.asr
    assert program.name == "voicestack-stt"
    assert program.installed
    assert program.version
    assert program.supports_transcript_streaming
    tiny, base = program.models
    assert (tiny.name, tiny.languages) == ("tiny.en", ["en"])
    assert base.name == "base"
    assert {"en", "de", "fr"} <= set(base.languages)
    assert tiny.attribution.url.startswith("https://")


def test_transcribes_kokoro_sentence_sent_as_16k_chunks(broker: tuple[str, int], sentence: tuple[str, Pcm]) -> None:
    text, pcm = sentence
    events = run(transcribe(broker[1], [Transcribe(language="en").event(), *audio_events(pcm)]))
    kinds = [e.type for e in events]
    assert kinds[0] == "transcript-start"
    assert kinds[-2:] == ["transcript", "transcript-stop"]
    transcript = Transcript.from_event(events[-2])
    assert words(transcript.text) == words(text)
    assert transcript.language == "en"
    chunks = [TranscriptChunk.from_event(e).text for e in events if e.type == "transcript-chunk"]
    assert chunks
    assert "".join(chunks) == transcript.text


def test_chunks_in_another_format_than_announced_are_converted(
    broker: tuple[str, int], sentence: tuple[str, Pcm]
) -> None:
    text, pcm = sentence
    stereo = resample(pcm, 48_000)
    data = (np.repeat(np.clip(stereo.samples, -1, 1)[:, None], 2, axis=1) * 2_000_000_000).astype("<i4").tobytes()
    step = 48_000 * 8 // 10  # 100 ms of 32-bit stereo
    chunks = [
        AudioChunk(rate=48_000, width=4, channels=2, audio=data[i : i + step]).event()
        for i in range(0, len(data), step)
    ]
    events = [AudioStart(rate=16_000, width=2, channels=1).event(), *chunks, AudioStop().event()]
    transcript = Transcript.from_event(run(transcribe(broker[1], events))[-2])
    assert words(transcript.text) == words(text)


def test_unknown_language_is_an_error_and_the_connection_stays(broker: tuple[str, int]) -> None:
    async def exchange() -> tuple[Error, Event]:
        async with client(broker[1]) as conn:
            await conn.write_event(Transcribe(language="klingon").event())
            error = Error.from_event((await read_until(conn, "error"))[-1])
            await conn.write_event(Describe().event())
            return error, (await read_until(conn, "info"))[-1]

    error, info = run(exchange())
    assert error.code == "unsupported_language"
    assert info.type == "info"


def test_transcribe_name_picks_a_catalog_model(broker: tuple[str, int]) -> None:
    async def exchange() -> Error:
        async with client(broker[1]) as conn:
            await conn.write_event(Transcribe(name="large-v9").event())
            return Error.from_event((await read_until(conn, "error"))[-1])

    error = run(exchange())
    assert error.code == "model_not_found"
    assert "tiny.en, base" in error.text


@pytest.mark.parametrize(
    ("events", "code"),
    [
        ([AudioChunk(rate=16_000, width=2, channels=1, audio=b"\0\0" * 160).event()], "audio_not_started"),
        ([AudioStop().event()], "audio_not_started"),
        ([AudioStart(rate=16_000, width=3, channels=1).event()], "unsupported_audio_format"),
        ([AudioStart(rate=0, width=2, channels=1).event()], "unsupported_audio_format"),
        (
            [
                AudioStart(rate=16_000, width=2, channels=1).event(),
                AudioChunk(rate=16_000, width=2, channels=1, audio=b"\0\0\0").event(),
            ],
            "unsupported_audio_format",
        ),
        ([Event(type="audio-start", data={"rate": 16_000})], "invalid_event"),
    ],
    ids=["chunk-before-start", "stop-before-start", "width-3", "rate-0", "half-sample", "malformed"],
)
def test_bad_audio_is_an_error_event_then_the_connection_closes(
    broker: tuple[str, int], events: list[Event], code: str
) -> None:
    async def exchange() -> tuple[Error, bool]:
        async with client(broker[1]) as conn:
            await send_all(conn, events)
            error = Error.from_event((await read_until(conn, "error"))[-1])
            return error, await closed(conn)

    error, was_closed = run(exchange())
    assert error.code == code
    assert error.text
    assert was_closed


def test_silence_gives_an_empty_transcript(broker: tuple[str, int]) -> None:
    silence = Pcm(np.zeros(16_000, np.float32), 16_000)
    transcript = Transcript.from_event(run(transcribe(broker[1], audio_events(silence)))[-2])
    assert transcript.text == ""


def test_saturated_like_http_and_a_dropped_client_leaves_no_job(
    broker: tuple[str, int], sentence: tuple[str, Pcm]
) -> None:
    """A long transcription holds the one context: Wyoming and HTTP are refused alike; hanging up frees it."""
    url, port = broker
    _, pcm = sentence
    long_speech = Pcm(np.tile(pcm.samples, 8), pcm.sample_rate)
    before = metric(url, "stt_wyoming_requests_total", kind="transcribe", outcome="cancelled")

    async def scenario() -> tuple[Error, int]:
        async with client(port) as holder:
            await send_all(holder, audio_events(long_speech))
            await asyncio.to_thread(wait_for, lambda: metric(url, "stt_workers_busy") == 1, "the context to be busy")
            refused = Error.from_event(await transcribe_error(port, pcm))
            async with httpx.AsyncClient() as http:
                answer = await http.post(
                    f"{url}/v1/transcribe", files={"file": ("a.pcm", b"\0\0" * 1600)}, data={"sample_rate": "16000"}
                )
            # Hanging up now: the running decode is cancelled, nothing waits or runs afterwards.
        return refused, answer.status_code

    refused, status = run(scenario())
    assert refused.code == "saturated"
    assert "retry" in refused.text
    assert status == 503
    wait_for(lambda: metric(url, "stt_workers_busy") == 0, "the context to be free")
    wait_for(lambda: metric(url, "stt_wyoming_connections") == 0, "connections to close")
    assert metric(url, "stt_queue_depth") == 0
    assert metric(url, "stt_wyoming_requests_total", kind="transcribe", outcome="cancelled") == before + 1
    assert metric(url, "stt_errors_total", code="saturated") >= 2
    # ...and the broker serves the next request as usual.
    assert run(transcribe(port, audio_events(pcm)))[-1].type == "transcript-stop"


async def transcribe_error(port: int, pcm: Pcm) -> Event:
    async with client(port) as conn:
        await send_all(conn, audio_events(pcm))
        return (await read_until(conn, "error"))[-1]


def test_client_gone_mid_stream_leaves_nothing(broker: tuple[str, int], sentence: tuple[str, Pcm]) -> None:
    url, port = broker
    _, pcm = sentence

    async def hang_up() -> None:
        async with client(port) as conn:
            await send_all(conn, audio_events(pcm)[:5])

    run(hang_up())
    wait_for(lambda: metric(url, "stt_wyoming_connections") == 0, "the connection to close")
    assert metric(url, "stt_workers_busy") == 0
    assert metric(url, "stt_queue_depth") == 0
