"""STT speed: bare whisper.cpp, the broker, the gateway and whisper.cpp's own server, in one run.

    uv run python bench/bench_stt.py --server /path/to/whisper-server [--runs 20] [--json out.json]

On a ~5 s Kokoro clip and the bundled tiny.en (f16):
  * sequential latency (one client, a lone request each time), calls alternating bare -> broker
    -> gateway -> whisper-server (the order rotates every round), so drift on a shared machine
    hits every path alike;
  * the broker's and the gateway's min and p50 ratios to the bare engine;
  * throughput at 2 and 4 concurrent clients (``--clients``), broker and whisper-server alternating
    in blocks, and the broker's ratio to whisper-server at each;
  * with ``--fitted``, a second broker with STT_FIT_AUDIO_CTX=true (the encoder context fitted
    to each clip: less work than whisper.cpp's default, so it is reported beside the aims, not
    as one of them) on every path above.

"Bare" is pywhispercpp's ``Model`` with whisper.cpp's default parameters (flash attention
on, greedy, temperature fallback) and whisper.cpp's own default thread count, min(4, usable
cores), called with 16 kHz float samples from this process's main thread. The broker runs with
its default settings (pool layout from the cores, elastic threads, VAD on) as its own process,
the gateway in front of it. whisper-server is whisper.cpp built from source at the tag
pywhispercpp wraps (see docs/benchmarks.md), started with ``-t`` min(4, usable cores), its own
default on a machine with no CPU affinity set, and otherwise its defaults.
Speed is never asserted in tests; the numbers go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from benchkit import emit, machine, service, summary

from devkit.servers import free_port
from devkit.speech import TEST_CACHE, kokoro_speech
from stt_broker.models import prepare_bundled_ggml
from stt_broker.sizing import MAX_THREADS, pool_layout, usable_cores
from voicestack_common.audio import resample
from voicestack_common.encode import encode_audio

CLIP_TEXT = "Please call me back tomorrow morning. The meeting starts at noon, in the large room."


@contextmanager
def whisper_server(binary: Path, model: Path, threads: int) -> Iterator[str]:
    """whisper.cpp's own HTTP server on a free loopback port."""
    port = free_port()
    proc = subprocess.Popen(
        [str(binary), "-m", str(model), "-t", str(threads), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(url + "/", timeout=1)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("whisper-server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


def load(post: Callable[[httpx.Client], object], clients: int, per_client: int) -> dict[str, Any]:
    """``clients`` threads posting ``per_client`` requests each; requests/s and latency."""
    latencies: list[float] = []
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(timeout=300) as http:
            for _ in range(per_client):
                started = time.perf_counter()
                post(http)
                with lock:
                    latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(client) for _ in range(clients)]:
            future.result()
    elapsed = time.perf_counter() - started
    return {"requests": len(latencies), "seconds": elapsed, "latencies": latencies}


def ratio(a: list[float], b: list[float], fn: Callable[[list[float]], float]) -> float:
    return round(fn(a) / fn(b), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", type=Path, help="whisper.cpp's whisper-server binary (built from source)")
    parser.add_argument("--runs", type=int, default=20, help="sequential rounds (each path once per round)")
    parser.add_argument("--clients", type=int, nargs="+", default=[2, 4], help="concurrent clients, one load each")
    parser.add_argument("--per-client", type=int, default=4)
    parser.add_argument("--blocks", type=int, default=2, help="alternating throughput blocks per path")
    parser.add_argument("--fitted", action="store_true", help="also a broker with STT_FIT_AUDIO_CTX=true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from pywhispercpp.model import Model

    cores = usable_cores()
    default_threads = min(MAX_THREADS, cores)  # whisper.cpp's own default (its CLI, server and library)
    workers, threads = pool_layout(cores, elastic=True)
    clip = kokoro_speech(CLIP_TEXT, voice="jm_kumo")
    audio16 = resample(clip, 16_000).samples
    wav = encode_audio(clip, "wav")
    ggml = prepare_bundled_ggml(TEST_CACHE / "models")
    results: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "load_average_at_start": os.getloadavg(),
        "clip_seconds": round(clip.duration, 2),
        "broker_layout": {"workers": workers, "threads": f"elastic, 1 to {threads} per decode"},
        "bare_threads": default_threads,
    }
    bare_model = Model(str(ggml), n_threads=default_threads, print_progress=False, redirect_whispercpp_logs_to=None)
    quiet = {"STT_LOG_LEVEL": "WARNING", "GATEWAY_LOG_LEVEL": "WARNING"}
    with ExitStack() as stack:
        broker = stack.enter_context(
            service("stt_broker", "STT_PORT", {**quiet, "STT_CACHE_DIR": str(TEST_CACHE / "models")})
        )
        gateway = stack.enter_context(
            service(
                "gateway",
                "GATEWAY_PORT",
                {
                    **quiet,
                    "GATEWAY_STT_URLS": broker,
                    "GATEWAY_TTS_URLS": "http://127.0.0.1:9",
                    "GATEWAY_EVENTS_URL": "",
                },
                ready="/healthz",
            )
        )
        fitted = (
            stack.enter_context(
                service(
                    "stt_broker",
                    "STT_PORT",
                    {**quiet, "STT_CACHE_DIR": str(TEST_CACHE / "models"), "STT_FIT_AUDIO_CTX": "true"},
                )
            )
            if args.fitted
            else None
        )
        server = stack.enter_context(whisper_server(args.server, ggml, default_threads)) if args.server else None
        http = stack.enter_context(httpx.Client(timeout=300))

        def upload(url: str) -> Callable[[httpx.Client], object]:
            # English named: with none, STT_MODEL=auto gives the request to the multilingual base, not
            # the tiny.en that the bare engine runs.
            return lambda client: client.post(
                url, files={"file": ("a.wav", wav)}, data={"language": "en"}
            ).raise_for_status()

        paths: dict[str, Callable[[], object]] = {
            "bare": lambda: bare_model.transcribe(audio16),
            "broker": lambda: upload(f"{broker}/v1/transcribe")(http),
            "gateway": lambda: upload(f"{gateway}/api/voice/transcribe")(http),
        }
        if fitted:
            paths["broker (fitted)"] = lambda: upload(f"{fitted}/v1/transcribe")(http)
        if server:
            paths["whisper-server"] = lambda: upload(f"{server}/inference")(http)
        times: dict[str, list[float]] = {name: [] for name in paths}
        for fn in paths.values():
            fn()  # warm-up: lazy set-up, first-touch of the model pages
        names = list(paths)
        for round_ in range(args.runs):
            for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                started = time.perf_counter()
                paths[name]()
                times[name].append(time.perf_counter() - started)
        results["sequential"] = {
            name: summary(values) | {"min": round(min(values), 4)} for name, values in times.items()
        }
        results["ratios"] = {
            f"{name}/bare": {
                "min": ratio(times[name], times["bare"], min),
                "p50": ratio(times[name], times["bare"], statistics.median),
            }
            for name in names
            if name != "bare"
        }

        contenders = {"broker": upload(f"{broker}/v1/transcribe")}
        if fitted:
            contenders["broker (fitted)"] = upload(f"{fitted}/v1/transcribe")
        if server:
            contenders["whisper-server"] = upload(f"{server}/inference")
        for clients in args.clients:
            throughput: dict[str, dict[str, Any]] = {}
            for _ in range(args.blocks):
                for name, post in contenders.items():
                    block = load(post, clients, args.per_client)
                    total = throughput.setdefault(name, {"requests": 0, "seconds": 0.0, "latencies": []})
                    total["requests"] += block["requests"]
                    total["seconds"] += block["seconds"]
                    total["latencies"] += block["latencies"]
            per = {
                name: {"requests_per_s": round(t["requests"] / t["seconds"], 3), **summary(t["latencies"])}
                for name, t in throughput.items()
            }
            results[f"throughput_{clients}_clients"] = per
            if server:
                results[f"over_whisper_server_{clients}_clients"] = {
                    name: round(per[name]["requests_per_s"] / per["whisper-server"]["requests_per_s"], 3)
                    for name in per
                    if name != "whisper-server"
                }
    results["load_average_at_end"] = os.getloadavg()
    emit(results, args.json)


if __name__ == "__main__":
    main()
