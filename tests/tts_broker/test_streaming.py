"""Streaming over real HTTP: audio leaves the server sentence by sentence, and a client that leaves stops it."""

from __future__ import annotations

import re
import struct
import time

import httpx
import pytest

from devkit.speech import words
from tests.tts_broker.conftest import THREE_SENTENCES, Listener
from voicestack_common.audio import decode_audio

pytestmark = pytest.mark.engine


def timed_chunks(url: str, body: dict[str, object]) -> tuple[list[tuple[float, bytes]], float]:
    """Each chunk as it arrives, with its arrival time, and when the response ended."""
    started = time.perf_counter()
    chunks: list[tuple[float, bytes]] = []
    with httpx.stream("POST", f"{url}/v1/audio/speech", json=body, timeout=120) as response:
        assert response.status_code == 200
        for data in response.iter_raw():
            chunks.append((time.perf_counter() - started, data))
    return chunks, time.perf_counter() - started


def metric(url: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        match = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if match and match[1] == name and (match[2] or "") == wanted:
            return float(match[3])
    return 0.0


def test_several_chunks_and_the_first_long_before_the_end(tts_server: str, listener: Listener) -> None:
    chunks, total = timed_chunks(tts_server, {"input": THREE_SENTENCES, "voice": "af_heart", "response_format": "mp3"})
    assert len(chunks) >= 3  # one per sentence, and the encoder's tail
    first_at = chunks[0][0]
    assert first_at < 0.6 * total, (first_at, total)
    audio = b"".join(data for _, data in chunks)
    assert listener.words(audio) == words(THREE_SENTENCES)


def test_wav_streams_with_a_header_players_accept(tts_server: str) -> None:
    chunks, _ = timed_chunks(
        tts_server, {"input": "Hello there. How are you today?", "voice": "am_adam", "response_format": "wav"}
    )
    assert len(chunks) >= 2
    audio = b"".join(data for _, data in chunks)
    assert audio[:4] == b"RIFF"
    assert struct.unpack("<I", audio[40:44])[0] == 0xFFFFFFFF  # length unknown when the header left
    assert decode_audio(audio, 24_000).duration == pytest.approx((len(audio) - 44) / 48_000, abs=0.01)


def test_a_client_that_disconnects_stops_its_synthesis(tts_server: str) -> None:
    long_text = " ".join(
        f"This is sentence number {n} of a long story."
        for n in ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
    )
    cancelled = metric(tts_server, "tts_syntheses_total", engine="kokoro-onnx", outcome="cancelled")
    started = time.perf_counter()
    with httpx.stream(
        "POST",
        f"{tts_server}/v1/audio/speech",
        timeout=60,
        json={"input": long_text, "voice": "af_heart", "response_format": "pcm"},
    ) as response:
        first = next(response.iter_raw())
        assert first
        sentence = time.perf_counter() - started  # about what one sentence takes on this machine now
    deadline = time.perf_counter() + 60
    while metric(tts_server, "tts_workers_busy") > 0 and time.perf_counter() < deadline:
        time.sleep(0.1)
    freed = time.perf_counter() - started
    assert metric(tts_server, "tts_workers_busy") == 0
    assert metric(tts_server, "tts_syntheses_total", engine="kokoro-onnx", outcome="cancelled") == cancelled + 1
    # Ten sentences would take about ten times the first; the worker stops after the one in progress.
    assert freed < 3 * sentence + 1, (freed, sentence)
    full = httpx.post(f"{tts_server}/v1/synthesize", json={"text": "Still here.", "format": "pcm"}, timeout=60)
    assert full.status_code == 200
