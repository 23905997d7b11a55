"""The TTS broker's Wyoming server, driven by the ``wyoming`` package's client, on the bundled Kokoro."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from wyoming.audio import AudioChunk, AudioStart
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeVoice

from devkit.servers import free_port, serve
from devkit.speech import words
from devkit.wyoming_kit import client, closed, metric, read_until, run, wait_for
from tests.tts_broker.conftest import PHRASE, Listener, tts_settings
from tts_broker import wyoming as tts_wyoming
from tts_broker.app import create_app

pytestmark = [pytest.mark.engine, pytest.mark.slow]

ENGLISH = ("af_heart", "am_michael", "bf_emma", "bm_george")
LONG_TEXT = " ".join(["The quick brown fox jumps over the lazy dog."] * 6)


@pytest.fixture(scope="module")
def broker(model_cache: Path) -> Iterator[tuple[str, int]]:
    """One worker, no queue and no cache (every request synthesizes); Wyoming on."""
    port = free_port()
    settings = tts_settings(
        model_cache, workers=1, max_queue=0, cache_max_entries=0, wyoming_enabled=True, wyoming_port=port
    )
    with serve(create_app(settings)) as url:
        yield url, port


def audio_of(events: list[Event]) -> bytes:
    """The PCM of every audio-chunk, checking each one's format."""
    chunks = [AudioChunk.from_event(e) for e in events if e.type == "audio-chunk"]
    assert chunks
    assert {(c.rate, c.width, c.channels) for c in chunks} == {(24_000, 2, 1)}
    return b"".join(c.audio for c in chunks)


async def synthesize(port: int, text: str, voice: SynthesizeVoice | None = None) -> list[Event]:
    async with client(port) as conn:
        await conn.write_event(Synthesize(text=text, voice=voice).event())
        return await read_until(conn, "audio-stop")


def test_describe_lists_every_voice(broker: tuple[str, int]) -> None:
    async def describe() -> Event:
        async with client(broker[1]) as conn:
            await conn.write_event(Describe().event())
            return (await read_until(conn, "info"))[-1]

    (program,) = Info.from_event(run(describe())).tts
    assert program.name == "voicestack-tts"
    assert program.installed
    assert program.version
    assert program.supports_synthesize_streaming
    voices = {v.name: v for v in program.voices}
    assert len(voices) == 54
    assert (voices["af_heart"].languages, voices["bf_emma"].languages, voices["jf_alpha"].languages) == (
        ["en_US"],
        ["en_GB"],
        ["ja_JP"],
    )
    # Mandarin is listed, but not installed: its text front end is missing here.
    assert voices["zf_xiaobei"].languages == ["zh_CN"]
    assert [v.installed for v in program.voices if v.languages != ["zh_CN"]] == [True] * 46
    assert not any(v.installed for v in program.voices if v.languages == ["zh_CN"])


@pytest.mark.parametrize("voice", ENGLISH)
def test_each_voice_says_the_phrase(broker: tuple[str, int], listener: Listener, voice: str) -> None:
    events = run(synthesize(broker[1], PHRASE, SynthesizeVoice(name=voice)))
    assert events[0].type == "audio-start"
    start = AudioStart.from_event(events[0])
    assert (start.rate, start.width, start.channels) == (24_000, 2, 1)
    assert listener.words(audio_of(events), "pcm") == words(PHRASE)


def test_a_language_instead_of_a_voice(broker: tuple[str, int], listener: Listener) -> None:
    events = run(synthesize(broker[1], PHRASE, SynthesizeVoice(language="en_US")))
    assert listener.words(audio_of(events), "pcm") == words(PHRASE)


def test_streamed_text_is_spoken_sentence_by_sentence(broker: tuple[str, int], listener: Listener) -> None:
    """The first sentence's audio arrives before the last sentence has even been sent."""
    first, second, third = "Hello there. ", "The quick brown fox jumps over the lazy dog. ", "Thank you very much."

    async def stream() -> tuple[list[Event], list[Event]]:
        async with client(broker[1]) as conn:
            await conn.write_event(SynthesizeStart(voice=SynthesizeVoice(name="am_michael")).event())
            for piece in (first, "The quick brown", " fox jumps over the lazy dog. "):
                await conn.write_event(SynthesizeChunk(text=piece).event())
            early = await read_until(conn, "audio-chunk")
            await conn.write_event(SynthesizeChunk(text=third).event())
            # Clients also send the whole text for servers that do not stream: it is not spoken twice.
            await conn.write_event(Synthesize(text=first + second + third).event())
            await conn.write_event(SynthesizeStop().event())
            return early, await read_until(conn, "synthesize-stopped")

    early, rest = run(stream())
    kinds = [e.type for e in early + rest]
    assert kinds.count("audio-start") == kinds.count("audio-stop") == 3  # one per sentence
    assert kinds[-1] == "synthesize-stopped"
    assert listener.words(audio_of(early + rest), "pcm") == words(first + second + third)


@pytest.mark.parametrize(
    ("voice", "code"),
    [
        (SynthesizeVoice(name="nobody"), "unknown_voice"),
        (SynthesizeVoice(language="xx_XX"), "unsupported_lang_code"),
        (SynthesizeVoice(name="zf_xiaobei"), "unsupported_language"),
        (SynthesizeVoice(language="zh_CN"), "unsupported_language"),
    ],
)
def test_unknown_voice_or_language_is_an_error_and_the_connection_stays(
    broker: tuple[str, int], voice: SynthesizeVoice, code: str
) -> None:
    async def exchange() -> tuple[list[Event], Event]:
        async with client(broker[1]) as conn:
            await conn.write_event(Synthesize(text=PHRASE, voice=voice).event())
            refused = await read_until(conn, "error")
            await conn.write_event(Describe().event())
            return refused, (await read_until(conn, "info"))[-1]

    refused, info = run(exchange())
    assert [e.type for e in refused] == ["error"]  # no audio-start before it
    assert Error.from_event(refused[0]).code == code
    assert info.type == "info"


@pytest.mark.parametrize(
    ("events", "code"),
    [
        ([SynthesizeChunk(text="Hello.").event()], "synthesis_not_started"),
        ([SynthesizeStop().event()], "synthesis_not_started"),
        ([Event(type="synthesize", data={"voice": {"name": "jm_kumo"}})], "invalid_event"),
    ],
    ids=["chunk-before-start", "stop-before-start", "no-text"],
)
def test_bad_sequences_are_an_error_then_the_connection_closes(
    broker: tuple[str, int], events: list[Event], code: str
) -> None:
    async def exchange() -> tuple[Error, bool]:
        async with client(broker[1]) as conn:
            for event in events:
                await conn.write_event(event)
            error = Error.from_event((await read_until(conn, "error"))[-1])
            return error, await closed(conn)

    error, was_closed = run(exchange())
    assert error.code == code
    assert was_closed


def test_a_new_stream_ends_the_one_left_open(broker: tuple[str, int], listener: Listener) -> None:
    async def two_streams() -> list[Event]:
        async with client(broker[1]) as conn:
            await conn.write_event(SynthesizeStart().event())
            await conn.write_event(SynthesizeChunk(text="Hello there.").event())
            await conn.write_event(SynthesizeStart(voice=SynthesizeVoice(name="am_michael")).event())
            await conn.write_event(SynthesizeChunk(text=PHRASE).event())
            await conn.write_event(SynthesizeStop().event())
            first = await read_until(conn, "synthesize-stopped")
            return first + await read_until(conn, "synthesize-stopped")

    events = run(two_streams())
    first_end = [e.type for e in events].index("synthesize-stopped")
    assert listener.words(audio_of(events[:first_end]), "pcm") == ["hello", "there"]
    assert listener.words(audio_of(events[first_end:]), "pcm") == words(PHRASE)


def test_a_stream_carries_a_bounded_amount_of_text(broker: tuple[str, int], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tts_wyoming, "MAX_STREAM_CHARS", 30)

    async def flood() -> tuple[Error, bool]:
        async with client(broker[1]) as conn:
            await conn.write_event(SynthesizeStart().event())
            for _ in range(3):
                await conn.write_event(SynthesizeChunk(text="A dozen more").event())
            error = Error.from_event((await read_until(conn, "error"))[-1])
            return error, await closed(conn)

    error, was_closed = run(flood())
    assert error.code == "text_too_long"
    assert was_closed


def test_too_long_text_is_refused_like_http(broker: tuple[str, int]) -> None:
    error = Error.from_event(run(synthesize_error(broker[1], "a" * 5000)))
    assert error.code == "text_too_long"


async def synthesize_error(port: int, text: str) -> Event:
    async with client(port) as conn:
        await conn.write_event(Synthesize(text=text).event())
        return (await read_until(conn, "error"))[-1]


def test_saturated_like_http_and_a_dropped_client_leaves_no_job(broker: tuple[str, int]) -> None:
    url, port = broker
    before = metric(url, "tts_wyoming_requests_total", kind="synthesize", outcome="cancelled")

    async def scenario() -> tuple[Error, int]:
        async with client(port) as holder:
            await holder.write_event(Synthesize(text=LONG_TEXT).event())
            await read_until(holder, "audio-chunk")  # the one worker is speaking
            refused = Error.from_event(await synthesize_error(port, PHRASE))
            async with httpx.AsyncClient(timeout=30) as http:
                answer = await http.post(f"{url}/v1/synthesize", json={"text": PHRASE})
            # Hanging up mid-stream: the worker stops before its next sentence.
        return refused, answer.status_code

    refused, status = run(scenario())
    assert refused.code == "saturated"
    assert status == 503
    wait_for(lambda: metric(url, "tts_workers_busy") == 0, "the worker to stop")
    wait_for(lambda: metric(url, "tts_wyoming_connections") == 0, "connections to close")
    assert metric(url, "tts_queue_depth") == 0
    assert metric(url, "tts_wyoming_requests_total", kind="synthesize", outcome="cancelled") == before + 1
    assert run(synthesize(port, PHRASE))[-1].type == "audio-stop"


def test_streamed_request_dropped_before_its_end_leaves_nothing(broker: tuple[str, int]) -> None:
    url, port = broker

    async def hang_up() -> None:
        async with client(port) as conn:
            await conn.write_event(SynthesizeStart().event())
            await conn.write_event(SynthesizeChunk(text=LONG_TEXT).event())
            await read_until(conn, "audio-chunk")
            await asyncio.sleep(0)

    run(hang_up())
    wait_for(lambda: metric(url, "tts_workers_busy") == 0, "the worker to stop")
    wait_for(lambda: metric(url, "tts_wyoming_connections") == 0, "connections to close")
    assert metric(url, "tts_wyoming_requests_total", kind="synthesize-stream", outcome="cancelled") >= 1
