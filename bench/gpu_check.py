"""The measuring half of bench/gpu_check.sh: bare whisper.cpp vs the broker, and the GPU evidence.

    python bench/gpu_check.py --model ggml-tiny.en-q8_0.bin --clip a.wav [--clip b.wav] \
        [--use-gpu true] [--runs 20] [--server whisper-server] [--clients 1,4,16]

Prints a markdown table: bare p50 with flash attention off and on, the broker with 1 and
4 contexts (p50 per clip, requests/s at each client count), whisper-server when given;
checks every transcript holds the clip's expected words (``--expect``); with
``--use-gpu true`` records what ``nvidia-smi`` says each broker process holds. Runs on a
CPU (``--use-gpu false``) too, which is how the tests exercise it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def broker(model: Path, workers: int, threads: int, use_gpu: bool, log: Path) -> Iterator[tuple[str, int]]:
    """The broker as its own process (VAD on: the default path); yields its URL and pid."""
    port = free_port()
    env = {
        **os.environ,
        "STT_PORT": str(port),
        "STT_MODEL_PATH": str(model),
        "STT_WORKERS": str(workers),
        "STT_THREADS": str(threads),
        "STT_USE_GPU": "true" if use_gpu else "false",
        "STT_VAD": "true",
        "STT_MAX_QUEUE": "64",
        "STT_LOG_LEVEL": "INFO",
    }
    with log.open("ab") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "stt_broker.cli", "serve"], env=env, stderr=sink)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 300
            while True:
                try:
                    if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the broker did not start; see {log}")
                time.sleep(0.2)
            yield url, proc.pid
        finally:
            proc.terminate()
            proc.wait(60)


@contextmanager
def whisper_server(binary: Path, model: Path, threads: int) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [str(binary), "-m", str(model), "-t", str(threads), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                httpx.get(url + "/", timeout=2)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("whisper-server did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


def p50(fn: Callable[[], object], runs: int, *, warm_up: bool = True) -> float:
    if warm_up:
        fn()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def rate(post: Callable[[httpx.Client], object], clients: int, per_client: int) -> float:
    done = 0
    lock = threading.Lock()

    def client() -> None:
        nonlocal done
        with httpx.Client(timeout=300) as http:
            for _ in range(per_client):
                post(http)
                with lock:
                    done += 1

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(client) for _ in range(clients)]:
            future.result()
    return done / (time.perf_counter() - started)


def upload(url: str, name: str, data: bytes) -> Callable[[httpx.Client], object]:
    return lambda client: client.post(url, files={"file": (name, data)}).raise_for_status()


def gpu_memory(pid: int) -> str:
    """What nvidia-smi says the process holds on the GPU ("" without nvidia-smi)."""
    if shutil.which("nvidia-smi") is None:
        return ""
    out = subprocess.run(
        ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return ", ".join(
        line.split(",", 1)[1].strip() for line in out.splitlines() if line.split(",")[0].strip() == str(pid)
    )


def bare(model: Path, samples: Any, threads: int, flash: bool, use_gpu: bool, runs: int) -> tuple[float, str]:
    from pywhispercpp.model import Model

    engine = Model(
        str(model),
        n_threads=threads,
        print_progress=False,
        redirect_whispercpp_logs_to=None,
        context_params={"use_gpu": use_gpu, "flash_attn": flash},
    )
    text = " ".join(s.text for s in engine.transcribe(samples))
    return p50(lambda: engine.transcribe(samples), runs, warm_up=False), text  # the first call warmed it


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--clip", type=Path, action="append", required=True, help="WAV; repeat for more clips")
    parser.add_argument("--expect", action="append", default=[], help="words each clip must contain, in order")
    parser.add_argument("--use-gpu", choices=("true", "false"), default="true")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--clients", default="1,4,16")
    parser.add_argument("--per-client", type=int, default=4)
    parser.add_argument("--workers", default="1,4")
    parser.add_argument("--server", type=Path)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--log", type=Path, default=Path("gpu_check.log"))
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from devkit.speech import words
    from voicestack_common.audio import decode_audio

    use_gpu = args.use_gpu == "true"
    clients = [int(c) for c in args.clients.split(",")]
    clips = [(path.name, path.read_bytes()) for path in args.clip]
    samples = [decode_audio(data).samples for _, data in clips]
    rows: list[tuple[str, list[str], str]] = []
    failures: list[str] = []
    evidence: dict[str, str] = {}

    def check(where: str, index: int, text: str) -> None:
        if index < len(args.expect) and not set(words(args.expect[index])) <= set(words(text)):
            failures.append(f"{where}, {clips[index][0]}: {text!r} lacks {args.expect[index]!r}")

    for flash in (False, True):
        cells = []
        for i, audio in enumerate(samples):
            seconds, text = bare(args.model, audio, args.threads, flash, use_gpu, args.runs)
            check(f"bare flash={flash}", i, text)
            cells.append(f"{seconds * 1000:.1f} ms")
        rows.append((f"bare, flash attention {'on' if flash else 'off'}", cells, "—"))

    for workers in (int(w) for w in args.workers.split(",")):
        with (
            broker(args.model, workers, args.threads, use_gpu, args.log) as (url, pid),
            httpx.Client(timeout=300) as http,
        ):
            cells = []
            for i, (name, data) in enumerate(clips):
                answer = http.post(url + "/v1/transcribe", files={"file": (name, data)})
                answer.raise_for_status()
                check(f"broker x{workers}", i, answer.json()["text"])

                def call(data: bytes = data, name: str = name) -> None:
                    http.post(url + "/v1/transcribe", files={"file": (name, data)}).raise_for_status()

                cells.append(f"{p50(call, args.runs, warm_up=False) * 1000:.1f} ms")
            rates = [rate(upload(url + "/v1/transcribe", *clips[0]), n, args.per_client) for n in clients]
            evidence[f"broker, {workers} contexts"] = gpu_memory(pid)
            rows.append(
                (f"broker, {workers} context{'s' if workers > 1 else ''}", cells, " / ".join(f"{r:.1f}" for r in rates))
            )

    if args.server:
        with whisper_server(args.server, args.model, args.threads) as url, httpx.Client(timeout=300) as http:
            cells = []
            for name, data in clips:

                def server_call(data: bytes = data, name: str = name) -> None:
                    http.post(url + "/inference", files={"file": (name, data)}).raise_for_status()

                cells.append(f"{p50(server_call, args.runs) * 1000:.1f} ms")
            rates = [rate(upload(url + "/inference", *clips[0]), n, args.per_client) for n in clients]
            rows.append(("whisper-server (same build)", cells, " / ".join(f"{r:.1f}" for r in rates)))

    head = (
        "| path | "
        + " | ".join(f"p50 ({name})" for name, _ in clips)
        + f" | req/s at {' / '.join(map(str, clients))} clients |"
    )
    print(head)
    print("|" + " --- |" * (len(clips) + 2))
    for label, cells, rates_cell in rows:
        print(f"| {label} | " + " | ".join(cells) + f" | {rates_cell} |")
    for label, memory in evidence.items():
        print(f"nvidia-smi, {label}: {memory or 'no GPU memory held (or no nvidia-smi)'}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "gpu_memory": evidence, "failures": failures}, indent=2))
    for failure in failures:
        print(f"TRANSCRIPT CHECK FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
