"""STT broker benchmark: the broker over HTTP against the bare engine, in one run.

    uv run python bench/bench_stt.py [--runs 20] [--json out.json]

Measures, on a ~5 s Kokoro clip and the bundled tiny.en model:
  * the bare engines (whisper.cpp, faster-whisper) in this process: latency, real-time factor;
  * the broker as its own process over HTTP: latency p50/p99 over sequential requests and
    the overhead ratio against the bare whisper.cpp engine;
  * throughput at 1, 2 and 4 concurrent clients for two pool layouts
    (1 context x 2 threads, 2 contexts x 1 thread);
  * whisper.cpp called from one dedicated thread versus from rotating pool threads
    (the OpenMP effect the broker's design avoids).
Speed is never asserted in tests; the numbers go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
from benchkit import emit, machine, service, summary, timed
from tests.speech import TEST_CACHE, kokoro_speech

from stt_broker.engines.base import TranscribeOptions
from stt_broker.engines.faster_whisper import FasterWhisperEngine
from stt_broker.engines.whispercpp import WhisperCppEngine
from stt_broker.models import bundled_ct2_dir, prepare_bundled_ggml
from voicestack_common.audio import resample
from voicestack_common.encode import encode_audio

CLIP_TEXT = "Please call me back tomorrow morning. The meeting starts at noon, in the large room."


def broker(workers: int, threads: int) -> AbstractContextManager[str]:
    """The broker as its own process, the way it is deployed."""
    return service(
        "stt_broker",
        "STT_PORT",
        {
            "STT_WORKERS": str(workers),
            "STT_THREADS": str(threads),
            "STT_CACHE_DIR": str(TEST_CACHE / "models"),
            "STT_MAX_QUEUE": "16",
            "STT_LOG_LEVEL": "WARNING",
        },
    )


def throughput(url: str, wav: bytes, clients: int, per_client: int) -> dict[str, float]:
    latencies: list[float] = []
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(timeout=120) as http:
            for _ in range(per_client):
                started = time.perf_counter()
                response = http.post(f"{url}/v1/transcribe", files={"file": ("a.wav", wav)})
                response.raise_for_status()
                with lock:
                    latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(client) for _ in range(clients)]:
            future.result()
    elapsed = time.perf_counter() - started
    return {"clients": clients, "requests_per_s": len(latencies) / elapsed, **summary(latencies)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    clip = kokoro_speech(CLIP_TEXT, voice="jm_kumo")
    audio16 = resample(clip, 16_000)
    wav = encode_audio(clip, "wav")
    options = TranscribeOptions(language="en")
    results: dict[str, object] = {
        "machine": machine(),
        "clip_seconds": round(clip.duration, 2),
    }

    ggml = prepare_bundled_ggml(TEST_CACHE / "models")
    cpp = WhisperCppEngine(ggml, threads=2)
    cpp.load()
    cpp.transcribe(audio16, options)  # warm-up
    bare = timed(lambda: cpp.transcribe(audio16, options), args.runs)
    results["whispercpp_bare"] = {**summary(bare), "rtf": statistics.median(bare) / clip.duration}

    rotating: list[float] = []
    with ThreadPoolExecutor(4) as pool:  # every call on whichever pool thread is free
        for _ in range(args.runs):
            started = time.perf_counter()
            pool.submit(cpp.transcribe, audio16, options).result()
            rotating.append(time.perf_counter() - started)
            pool.submit(time.sleep, 0)  # nudge the pool to hand the next call to another thread
    results["whispercpp_rotating_threads"] = summary(rotating)
    cpp.close()

    fw = FasterWhisperEngine(bundled_ct2_dir(), threads=2, model_id="tiny.en")
    fw.load()
    fw.transcribe(audio16, options)
    fw_times = timed(lambda: fw.transcribe(audio16, options), max(5, args.runs // 2))
    results["faster_whisper_bare"] = {**summary(fw_times), "rtf": statistics.median(fw_times) / clip.duration}
    fw.close()

    with broker(workers=1, threads=2) as url, httpx.Client(timeout=120) as http:
        http.post(f"{url}/v1/transcribe", files={"file": ("a.wav", wav)}).raise_for_status()
        seq = timed(
            lambda: http.post(f"{url}/v1/transcribe", files={"file": ("a.wav", wav)}).raise_for_status(), args.runs
        )
        results["broker_sequential"] = {
            **summary(seq),
            "rtf": statistics.median(seq) / clip.duration,
            "overhead_ratio": statistics.median(seq) / statistics.median(bare),
        }
        results["throughput_1x2"] = [throughput(url, wav, c, 4) for c in (1, 2, 4)]
    with broker(workers=2, threads=1) as url:
        results["throughput_2x1"] = [throughput(url, wav, c, 4) for c in (1, 2, 4)]

    emit(results, args.json)


if __name__ == "__main__":
    main()
