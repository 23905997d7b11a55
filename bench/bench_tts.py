"""TTS broker benchmark: the broker's streaming endpoint over HTTP against the bare engine, in one run.

    uv run python bench/bench_tts.py [--runs 5] [--json out.json]
    uv run python bench/bench_tts.py --arena [--runs 20] [--json out.json]

Measures, on the bundled Kokoro int8 model, for a 1-sentence and a 4-sentence text:
  * the bare engine in this process (KokoroEngine.stream): time to the first audio chunk, total
    time, real-time factor, at 1 and 2 ONNX Runtime threads;
  * the broker as its own process over HTTP, ``POST /v1/audio/speech`` streaming mp3 with the
    cache off: time to the first body byte, total time, and both as ratios to the bare engine;
  * a cached request's latency (the same request again, cache on);
  * throughput at 1, 2 and 4 concurrent clients for two pool layouts
    (1 worker x 2 threads, 2 workers x 1 thread).
``--arena`` instead measures what ONNX Runtime's CPU memory arena (``TTS_CPU_MEMORY_ARENA``, on
by default, without the memory patterns) is worth: two engines in this process, arena on and off,
synthesizing alternately, once the same sentence every time (the arena's best case: one input
shape) and once a new text every time (what a service sees), the off/on ratio of the synthesis time at min and p50.
Speed is never asserted in tests; the numbers go to docs/tts.md.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
from benchkit import emit, machine, service, summary

from devkit.speech import TEST_CACHE
from tts_broker.engines.base import SpeechRequest, VoiceBlend
from tts_broker.engines.kokoro import KokoroEngine
from tts_broker.models import bundled_files

TEXTS = {
    "1_sentence": "The quick brown fox jumps over the lazy dog near the river bank.",
    "4_sentences": "The quick brown fox jumps over the lazy dog near the river bank. "
    "Please call me back tomorrow morning, before the meeting starts. "
    "We will talk about the new project and the plans for next year. "
    "Thank you very much for your patience, and have a pleasant evening.",
}
VOICE = "jf_alpha"


def bare_run(engine: KokoroEngine, text: str) -> tuple[float, float, float]:
    """(time to first chunk, total time, audio seconds) of one synthesis."""
    started = time.perf_counter()
    first = 0.0
    seconds = 0.0
    for pcm in engine.stream(SpeechRequest(text, VoiceBlend.single(VOICE), "a", 1.0), threading.Event()):
        first = first or time.perf_counter() - started
        seconds += pcm.duration
    return first, time.perf_counter() - started, seconds


def http_run(client: httpx.Client, url: str, text: str, fmt: str = "mp3") -> tuple[float, float]:
    """(time to the first body byte, total time) of one streamed request."""
    started = time.perf_counter()
    first = 0.0
    with client.stream(
        "POST", f"{url}/v1/audio/speech", json={"input": text, "voice": VOICE, "response_format": fmt}
    ) as response:
        response.raise_for_status()
        for _ in response.iter_raw():
            first = first or time.perf_counter() - started
    return first, time.perf_counter() - started


def broker(workers: int, threads: int, cache: bool = False) -> AbstractContextManager[str]:
    """The broker as its own process, the way it is deployed."""
    return service(
        "tts_broker",
        "TTS_PORT",
        {
            "TTS_WORKERS": str(workers),
            "TTS_THREADS": str(threads),
            "TTS_CACHE_DIR": str(TEST_CACHE / "models"),
            "TTS_MAX_QUEUE": "16",
            "TTS_LOG_LEVEL": "WARNING",
            "TTS_CACHE_MAX_ENTRIES": "256" if cache else "0",
        },
    )


def throughput(url: str, text: str, clients: int, per_client: int) -> dict[str, object]:
    latencies: list[float] = []
    firsts: list[float] = []
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(timeout=300) as http:
            for _ in range(per_client):
                first, total = http_run(http, url, text)
                with lock:
                    latencies.append(total)
                    firsts.append(first)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(client) for _ in range(clients)]:
            future.result()
    elapsed = time.perf_counter() - started
    return {
        "clients": clients,
        "requests_per_s": round(len(latencies) / elapsed, 3),
        "latency": summary(latencies),
        "first_audio": summary(firsts),
    }


def arena(runs: int) -> dict[str, object]:
    """Arena on against off, alternating; each engine gets 2 threads, as the broker's default pool."""
    from devkit.texts import WORDS

    files = bundled_files(TEST_CACHE / "models")
    engines = {
        on: KokoroEngine(files.model, files.voices, model_id="bench", threads=2, cpu_memory_arena=on)
        for on in (True, False)
    }
    rng = random.Random(7)
    results: dict[str, object] = {}
    for engine in engines.values():
        engine.load()
        bare_run(engine, TEXTS["1_sentence"])  # warm-up
    for case in ("same sentence", "new texts"):
        times: dict[bool, list[float]] = {True: [], False: []}
        for round_ in range(runs):
            text = (
                TEXTS["1_sentence"]
                if case == "same sentence"
                else " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 30))) + "."
            )
            order = (True, False) if round_ % 2 else (False, True)
            for on in order:
                times[on].append(bare_run(engines[on], text)[1])
        results[case] = {
            "arena_on": summary(times[True]) | {"min": round(min(times[True]), 4)},
            "arena_off": summary(times[False]) | {"min": round(min(times[False]), 4)},
            "off_over_on": {
                "min": round(min(times[False]) / min(times[True]), 3),
                "p50": round(statistics.median(times[False]) / statistics.median(times[True]), 3),
            },
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--arena", action="store_true", help="only: ONNX Runtime's memory arena on against off")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.arena:
        load_at_start = os.getloadavg()[0]
        measured = arena(args.runs)
        emit({"machine": machine(), "load_average_at_start": load_at_start, "arena": measured}, args.json)
        return

    files = bundled_files(TEST_CACHE / "models")
    results: dict[str, object] = {
        "machine": machine(),
        "model": "kokoro-82m-int8 (bundled), voice " + VOICE,
        "load_average_at_start": os.getloadavg()[0],
    }
    engines = {}
    for threads in (1, 2):
        engines[threads] = KokoroEngine(files.model, files.voices, model_id="bench", threads=threads)
        engines[threads].load()
        bare_run(engines[threads], TEXTS["1_sentence"])  # warm-up

    # Every broker is up before measuring, and bare and broker runs alternate, so that a
    # neighbour's load on a shared machine falls on both sides of each ratio alike.
    with (
        broker(1, 2) as one_by_two,
        broker(2, 1) as two_by_one,
        broker(1, 2, cache=True) as cached_url,
        httpx.Client(timeout=300) as http,
    ):
        for url in (one_by_two, two_by_one, cached_url):
            http_run(http, url, TEXTS["1_sentence"])  # warm-up
        for name, text in TEXTS.items():
            bare: dict[int, list[tuple[float, float, float]]] = {1: [], 2: []}
            served: list[tuple[float, float]] = []
            for _ in range(args.runs):
                bare[2].append(bare_run(engines[2], text))
                served.append(http_run(http, one_by_two, text))
                bare[1].append(bare_run(engines[1], text))
            audio = bare[2][0][2]
            for threads, runs in bare.items():
                results[f"bare_{name}_{threads}_threads"] = {
                    "audio_seconds": round(audio, 2),
                    "first_audio": summary([r[0] for r in runs]),
                    "total": summary([r[1] for r in runs]),
                    "rtf": round(statistics.median(r[1] for r in runs) / audio, 3),
                }
            first, total = summary([r[0] for r in served]), summary([r[1] for r in served])
            bare_first = statistics.median(r[0] for r in bare[2])
            bare_total = statistics.median(r[1] for r in bare[2])
            results[f"broker_{name}"] = {
                "first_audio": first,
                "total": total,
                "first_audio_ratio": round(first["p50"] / bare_first, 3),
                "total_ratio": round(total["p50"] / bare_total, 3),
                "rtf": round(total["p50"] / audio, 3),
            }

        http_run(http, cached_url, TEXTS["4_sentences"])  # fills the cache
        cached = [http_run(http, cached_url, TEXTS["4_sentences"])[1] for _ in range(max(20, args.runs))]
        results["broker_cached_4_sentences"] = summary(cached)

        layouts: dict[str, tuple[str, list[dict[str, object]]]] = {
            "throughput_1x2": (one_by_two, []),
            "throughput_2x1": (two_by_one, []),
        }
        for clients in (1, 2, 4):
            for url, rows in layouts.values():
                rows.append(throughput(url, TEXTS["1_sentence"], clients, 3))
        results.update({layout: rows for layout, (_, rows) in layouts.items()})
    for engine in engines.values():
        engine.close()
    results["load_average_at_end"] = os.getloadavg()[0]

    emit(results, args.json)


if __name__ == "__main__":
    main()
