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
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx

from stt_broker.engines.base import TranscribeOptions
from stt_broker.engines.faster_whisper import FasterWhisperEngine
from stt_broker.engines.whispercpp import WhisperCppEngine
from stt_broker.models import bundled_ct2_dir, prepare_bundled_ggml
from voicestack_common.audio import resample
from voicestack_common.encode import encode_audio

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.servers import free_port  # noqa: E402
from tests.speech import TEST_CACHE, kokoro_speech  # noqa: E402

CLIP_TEXT = "Please call me back tomorrow morning. The meeting starts at noon, in the large room."


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": statistics.median(values), "p99": percentile(values, 99), "max": max(values),
            "mean": statistics.fmean(values), "n": len(values)}


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


@contextmanager
def broker(workers: int, threads: int) -> Iterator[str]:
    """The broker as its own process, the way it is deployed."""
    port = free_port()
    env = {**os.environ, "STT_PORT": str(port), "STT_WORKERS": str(workers), "STT_THREADS": str(threads),
           "STT_CACHE_DIR": str(TEST_CACHE / "models"), "STT_MAX_QUEUE": "16", "STT_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen([sys.executable, "-m", "stt_broker.cli", "serve"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("broker did not start")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


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
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                   f"Python {platform.python_version()}",
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
        seq = timed(lambda: http.post(f"{url}/v1/transcribe", files={"file": ("a.wav", wav)}).raise_for_status(),
                    args.runs)
        results["broker_sequential"] = {**summary(seq), "rtf": statistics.median(seq) / clip.duration,
                                        "overhead_ratio": statistics.median(seq) / statistics.median(bare)}
        results["throughput_1x2"] = [throughput(url, wav, c, 4) for c in (1, 2, 4)]
    with broker(workers=2, threads=1) as url:
        results["throughput_2x1"] = [throughput(url, wav, c, 4) for c in (1, 2, 4)]

    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
