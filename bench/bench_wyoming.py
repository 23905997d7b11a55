"""Wyoming against HTTP on the same brokers, in one run: what the protocol face costs.

    uv run python bench/bench_wyoming.py [--runs 10] [--json out.json]

Both brokers run as their own processes with Wyoming on. Each round sends the same request
once over HTTP and once over Wyoming (alternating, so machine load hits both alike):
  * STT: a ~5 s Kokoro clip, as a WAV upload to ``/v1/transcribe`` and as 16 kHz
    audio-chunk events; time to the transcript.
  * TTS: two sentences, streamed as raw PCM from ``/v1/audio/speech`` and as Wyoming
    audio-chunk events; time to the first audio and to the end.
The figures that matter are the ratios (Wyoming / HTTP); absolute times depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

import httpx
from benchkit import emit, machine, service, summary
from wyoming.event import Event
from wyoming.tts import Synthesize

from devkit.servers import free_port
from devkit.speech import TEST_CACHE, kokoro_speech
from devkit.wyoming_kit import audio_events, client, read_until, send_all
from voicestack_common.encode import encode_audio

CLIP_TEXT = "Please call me back tomorrow morning. The meeting starts at noon, in the large room."
SAY_TEXT = "Hello there. The quick brown fox jumps over the lazy dog."


async def wyoming_transcribe(port: int, events: list[Event]) -> float:
    started = time.perf_counter()
    async with client(port) as conn:
        await send_all(conn, events)
        await read_until(conn, "transcript")
    return time.perf_counter() - started


async def wyoming_synthesize(port: int) -> tuple[float, float]:
    started = time.perf_counter()
    async with client(port) as conn:
        await conn.write_event(Synthesize(text=SAY_TEXT).event())
        await read_until(conn, "audio-chunk")
        first = time.perf_counter() - started
        await read_until(conn, "audio-stop")
    return first, time.perf_counter() - started


def http_synthesize(http: httpx.Client, url: str) -> tuple[float, float]:
    started = time.perf_counter()
    first = 0.0
    body = {"input": SAY_TEXT, "response_format": "pcm", "model": "kokoro"}
    with http.stream("POST", f"{url}/v1/audio/speech", json=body) as response:
        response.raise_for_status()
        for _ in response.iter_raw():
            first = first or time.perf_counter() - started
    return first, time.perf_counter() - started


def ratio(a: list[float], b: list[float]) -> float:
    return round(statistics.median(a) / statistics.median(b), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    clip = kokoro_speech(CLIP_TEXT, voice="jm_kumo")
    wav = encode_audio(clip, "wav")
    events = audio_events(clip)
    results: dict[str, object] = {"machine": machine(), "clip_seconds": round(clip.duration, 2), "runs": args.runs}
    stt_port, tts_port = free_port(), free_port()
    common = {"STT_CACHE_DIR": str(TEST_CACHE / "models"), "TTS_CACHE_DIR": str(TEST_CACHE / "models")}
    with (
        service(
            "stt_broker", "STT_PORT", {**common, "STT_WYOMING_ENABLED": "true", "STT_WYOMING_PORT": str(stt_port)}
        ) as stt_url,
        service(
            "tts_broker",
            "TTS_PORT",
            {**common, "TTS_WYOMING_ENABLED": "true", "TTS_WYOMING_PORT": str(tts_port), "TTS_CACHE_MAX_ENTRIES": "0"},
        ) as tts_url,
        httpx.Client(timeout=300) as http,
    ):
        http_stt: list[float] = []
        wyo_stt: list[float] = []
        http_tts: list[tuple[float, float]] = []
        wyo_tts: list[tuple[float, float]] = []
        for round_ in range(args.runs + 1):  # the first round warms both paths up
            started = time.perf_counter()
            http.post(f"{stt_url}/v1/transcribe", files={"file": ("a.wav", wav)}).raise_for_status()
            h = time.perf_counter() - started
            w = asyncio.run(wyoming_transcribe(stt_port, events))
            ht, wt = http_synthesize(http, tts_url), asyncio.run(wyoming_synthesize(tts_port))
            if round_:
                http_stt.append(h)
                wyo_stt.append(w)
                http_tts.append(ht)
                wyo_tts.append(wt)
    results["stt"] = {
        "http": summary(http_stt),
        "wyoming": summary(wyo_stt),
        "wyoming_over_http": ratio(wyo_stt, http_stt),
    }
    results["tts"] = {
        "http_first_audio": summary([f for f, _ in http_tts]),
        "wyoming_first_audio": summary([f for f, _ in wyo_tts]),
        "http_total": summary([t for _, t in http_tts]),
        "wyoming_total": summary([t for _, t in wyo_tts]),
        "first_audio_wyoming_over_http": ratio([f for f, _ in wyo_tts], [f for f, _ in http_tts]),
        "total_wyoming_over_http": ratio([t for _, t in wyo_tts], [t for _, t in http_tts]),
    }
    emit(results, args.json)


if __name__ == "__main__":
    main()
