"""Live transcription benchmark: end of speech → final, at 1, 4 and 8 concurrent real-time streams.

    uv run python bench/bench_live.py [--streams 1 4 8] [--rounds 1] [--workers 2 --threads 1] [--json out.json]

Each stream sends the same three Kokoro sentences with pauses (about 9 s) to the STT broker's
``WS /v1/stream`` as 100 ms PCM16 frames at real-time pace; the broker runs as its own process.
Per final it records
  * endpoint → final: from the ``speech_stopped`` event to the ``final`` event (client clock);
  * speech end → final: from the moment the last voiced sample was sent (includes the
    ``silence_ms`` wait that makes the endpoint, 600 ms by default);
and, in the same run (before and after each concurrency level), the bare whisper.cpp decode time
of the same utterances in this process — the ratio is the figure. CPU per stream is the broker
process's CPU seconds over the level, divided by streams and audio seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import websockets
from benchkit import emit, machine, summary

from devkit.live_audio import speech_with_pauses
from devkit.servers import free_port
from devkit.speech import TEST_CACHE
from stt_broker.engines.base import TranscribeOptions
from stt_broker.engines.whispercpp import WhisperCppEngine
from stt_broker.models import prepare_bundled_ggml
from voicestack_common.audio import STT_SAMPLE_RATE, Pcm

FRAME_S = 0.1


@contextmanager
def broker(workers: int, threads: int) -> Iterator[tuple[str, int]]:
    """The broker as its own process; yields its URL and pid (for CPU accounting)."""
    port = free_port()
    env = {
        **os.environ,
        "STT_PORT": str(port),
        "STT_WORKERS": str(workers),
        "STT_THREADS": str(threads),
        "STT_CACHE_DIR": str(TEST_CACHE / "models"),
        "STT_LOG_LEVEL": "WARNING",
        "STT_LIVE_MAX_SESSIONS": "64",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "stt_broker.cli", "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("stt_broker did not start")
            time.sleep(0.1)
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(30)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def one_stream(url: str, frames: list[bytes], spans: tuple[tuple[float, float], ...]) -> list[dict[str, float]]:
    """Stream at real-time pace; one record per final."""
    ws_url = url.replace("http://", "ws://") + "/v1/stream"
    stopped: dict[int, float] = {}
    results: list[dict[str, float]] = []
    # No keep-alive pings: a broker holding back (back-pressure) does not read them.
    async with websockets.connect(ws_url, max_size=None, ping_interval=None) as ws:
        await ws.send(json.dumps({"type": "start", "format": "pcm16", "partials": True}))
        began = time.monotonic()

        async def send() -> None:
            for index, frame in enumerate(frames):
                await ws.send(frame)
                delay = began + (index + 1) * FRAME_S - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            await ws.send(json.dumps({"type": "stop"}))

        sender = asyncio.create_task(send())
        async for message in ws:
            event = json.loads(message)
            now = time.monotonic()
            if event["type"] == "speech_stopped":
                stopped[event["utterance_id"]] = now
            elif event["type"] == "final":
                index = len(results)
                speech_end = began + spans[min(index, len(spans) - 1)][1]
                results.append(
                    {
                        "endpoint_to_final": now - stopped.get(event["utterance_id"], now),
                        "speech_end_to_final": now - speech_end,
                        "audio_seconds": event["end"] - event["start"],
                    }
                )
            elif event["type"] == "closed":
                break
        await sender
    return results


async def level(url: str, streams: int, frames: list[bytes], spans: tuple[tuple[float, float], ...]) -> list[Any]:
    runs = await asyncio.gather(*(one_stream(url, frames, spans) for _ in range(streams)))
    return [record for run in runs for record in run]


def bare_decodes(engine: WhisperCppEngine, utterances: list[Pcm]) -> list[float]:
    out = []
    for audio in utterances:
        started = time.perf_counter()
        engine.transcribe(audio, TranscribeOptions())
        out.append(time.perf_counter() - started)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--rounds", type=int, default=1, help="sessions per stream and level")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=argparse.FileType("w"), default=None)
    args = parser.parse_args()

    speech = speech_with_pauses()
    frames = [
        speech.pcm.to_pcm16()[i : i + int(STT_SAMPLE_RATE * FRAME_S) * 2]
        for i in range(0, len(speech.pcm.samples) * 2, int(STT_SAMPLE_RATE * FRAME_S) * 2)
    ]
    # What the session decodes: 300 ms before the voice to 200 ms after it.
    utterances = [
        Pcm(speech.pcm.samples[int((a - 0.3) * STT_SAMPLE_RATE) : int((b + 0.2) * STT_SAMPLE_RATE)], STT_SAMPLE_RATE)
        for a, b in speech.spans
    ]
    engine = WhisperCppEngine(prepare_bundled_ggml(TEST_CACHE / "models"), threads=args.threads)
    engine.load()
    bare_decodes(engine, utterances[:1])  # warm-up
    results: dict[str, Any] = {
        "machine": machine(),
        "load_average_at_start": os.getloadavg(),
        "broker": {"workers": args.workers, "threads": args.threads},
        "utterance_seconds": [round(u.duration, 2) for u in utterances],
        "levels": {},
    }
    with broker(args.workers, args.threads) as (url, pid):
        asyncio.run(level(url, 1, frames, speech.spans))  # warm-up session
        for streams in args.streams:
            bare = bare_decodes(engine, utterances)
            cpu_before, wall_before = cpu_seconds(pid), time.monotonic()
            records: list[dict[str, float]] = []
            for _ in range(args.rounds):
                records += asyncio.run(level(url, streams, frames, speech.spans))
            cpu = cpu_seconds(pid) - cpu_before
            wall = time.monotonic() - wall_before
            bare += bare_decodes(engine, utterances)
            endpoint = [r["endpoint_to_final"] for r in records]
            bare_p50 = statistics.median(bare)
            results["levels"][str(streams)] = {
                "finals": len(records),
                "endpoint_to_final": summary(endpoint),
                "speech_end_to_final": summary([r["speech_end_to_final"] for r in records]),
                "bare_decode": summary(bare),
                "p50_minus_bare_p50_s": round(statistics.median(endpoint) - bare_p50, 4),
                "p50_over_bare_p50": round(statistics.median(endpoint) / bare_p50, 2),
                "cpu_seconds_per_audio_second_per_stream": round(
                    cpu / (streams * args.rounds * speech.pcm.duration), 3
                ),
                "wall_seconds": round(wall, 1),
            }
            print(streams, json.dumps(results["levels"][str(streams)]), file=sys.stderr, flush=True)
    engine.close()
    results["load_average_at_end"] = os.getloadavg()
    emit(results, None)
    if args.json:
        json.dump(results, args.json, indent=2)


if __name__ == "__main__":
    main()
