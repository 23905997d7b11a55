"""Gateway benchmark: the gateway against the brokers and the bare engines, in one run.

    uv run python bench/bench_gateway.py [--runs 10] [--seconds 5] [--json out.json]

Measures, on the bundled models (whisper.cpp tiny.en, Kokoro int8):
  * transcription of a ~5 s clip: bare whisper.cpp in this process, the STT broker over HTTP
    (``/v1/transcribe``), the gateway over HTTP (``/api/voice/transcribe``) — p50/p99 and the
    overhead ratios gateway/broker and gateway/engine;
  * synthesis of one sentence: bare Kokoro, the TTS broker (``/v1/synthesize``, cache off), the
    gateway (``/api/voice/synthesize``) — the same;
  * requests per second with p50/p99 on ``/api/voice/voices`` and ``/api/voice/health`` at 1, 10
    and 50 concurrent clients (asyncio + httpx, each level for ``--seconds``).
Every service runs as its own process, as deployed; the bare engines run first, alone.
Speed is never asserted in tests; the numbers go to docs/gateway.md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import httpx
from benchkit import emit, machine, percentile, service, summary, timed

from devkit.speech import TEST_CACHE, kokoro_speech
from stt_broker.engines.base import TranscribeOptions
from stt_broker.engines.whispercpp import WhisperCppEngine
from stt_broker.models import prepare_bundled_ggml
from tts_broker.engines.base import SpeechRequest, VoiceBlend
from tts_broker.engines.kokoro import KokoroEngine
from tts_broker.models import bundled_files
from voicestack_common.audio import Pcm, resample
from voicestack_common.encode import encode_audio

CLIP_TEXT = "Please call me back tomorrow morning. The meeting starts at noon, in the large room."
SAY = "The quick brown fox jumps over the lazy dog."
VOICE = "jf_alpha"


def bare_engines(audio16: Pcm, runs: int, threads: int) -> dict[str, object]:
    """Whisper.cpp and Kokoro called directly, one after the other, with the machine to themselves."""
    options = TranscribeOptions(language="en")
    stt = WhisperCppEngine(prepare_bundled_ggml(TEST_CACHE / "models"), threads=threads)
    stt.load()
    transcribe = timed(lambda: stt.transcribe(audio16, options), runs)
    stt.close()
    files = bundled_files(TEST_CACHE / "models")
    tts = KokoroEngine(files.model, files.voices, model_id="kokoro-82m-int8", threads=threads)
    tts.load()
    request = SpeechRequest(SAY, VoiceBlend.single(VOICE), "a", 1.0)
    synthesize = timed(lambda: list(tts.stream(request, threading.Event())), runs)
    tts.close()
    return {"transcribe": summary(transcribe), "synthesize": summary(synthesize)}


def load_level(url: str, clients: int, seconds: float) -> dict[str, float]:
    """``clients`` concurrent loops of GET ``url`` for ``seconds``: requests/s, p50, p99."""
    latencies: list[float] = []
    errors = 0

    async def worker(http: httpx.AsyncClient, deadline: float) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            response = await http.get(url)
            if response.status_code != 200:
                errors += 1
            latencies.append(time.perf_counter() - started)

    async def run() -> float:
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        async with httpx.AsyncClient(timeout=30, limits=limits) as http:
            await http.get(url)
            started = time.perf_counter()
            await asyncio.gather(*(worker(http, started + seconds) for _ in range(clients)))
            return time.perf_counter() - started

    elapsed = asyncio.run(run())
    return {
        "clients": clients,
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "errors": errors,
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(percentile(latencies, 99) * 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=2, help="engine threads (bare and in the brokers)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    clip = kokoro_speech(CLIP_TEXT, voice="jm_kumo")
    wav = encode_audio(clip, "wav")
    results: dict[str, object] = {
        "machine": machine(),
        "clip_seconds": round(clip.duration, 2),
        "runs": args.runs,
        "engine_threads": args.threads,
        "bare": bare_engines(resample(clip, 16_000), args.runs, args.threads),
    }
    cache = str(TEST_CACHE / "models")
    quiet = {"STT_LOG_LEVEL": "WARNING", "TTS_LOG_LEVEL": "WARNING", "GATEWAY_LOG_LEVEL": "WARNING"}
    with ExitStack() as stack:
        stt = stack.enter_context(
            service("stt_broker", "STT_PORT", {**quiet, "STT_CACHE_DIR": cache, "STT_THREADS": str(args.threads)})
        )
        tts = stack.enter_context(
            service(
                "tts_broker",
                "TTS_PORT",
                {**quiet, "TTS_CACHE_DIR": cache, "TTS_CACHE_MAX_ENTRIES": "0", "TTS_THREADS": str(args.threads)},
            )
        )
        gateway = stack.enter_context(
            service(
                "gateway",
                "GATEWAY_PORT",
                {**quiet, "GATEWAY_STT_URLS": stt, "GATEWAY_TTS_URLS": tts, "GATEWAY_EVENTS_URL": ""},
            )
        )
        http = stack.enter_context(httpx.Client(timeout=120))

        def post_file(url: str) -> Callable[[], object]:
            return lambda: http.post(url, files={"file": ("a.wav", wav)}, data={"language": "en"}).raise_for_status()

        def post_json(url: str) -> Callable[[], object]:
            return lambda: http.post(url, json={"text": SAY, "voice": VOICE}).raise_for_status()

        bare = results["bare"]
        assert isinstance(bare, dict)
        for name, broker_call, gateway_call in (
            ("transcribe", post_file(f"{stt}/v1/transcribe"), post_file(f"{gateway}/api/voice/transcribe")),
            ("synthesize", post_json(f"{tts}/v1/synthesize"), post_json(f"{gateway}/api/voice/synthesize")),
        ):
            broker_times = timed(broker_call, args.runs)
            gateway_times = timed(gateway_call, args.runs)
            engine_p50 = bare[name]["p50"]
            results[name] = {
                "engine": bare[name],
                "broker": summary(broker_times),
                "gateway": summary(gateway_times),
                "gateway_over_broker": round(statistics.median(gateway_times) / statistics.median(broker_times), 3),
                "broker_over_engine": round(statistics.median(broker_times) / engine_p50, 3),
                "gateway_over_engine": round(statistics.median(gateway_times) / engine_p50, 3),
                "gateway_added_ms": round(
                    (statistics.median(gateway_times) - statistics.median(broker_times)) * 1000, 1
                ),
            }
        for path in ("/api/voice/voices", "/api/voice/health"):
            results[path] = [load_level(gateway + path, clients, args.seconds) for clients in (1, 10, 50)]

    emit(results, args.json)


if __name__ == "__main__":
    main()
