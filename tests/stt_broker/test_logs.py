"""The broker's own log survives loading several whisper.cpp contexts at once.

pywhispercpp can point the process's file descriptor 2 at /dev/null while a
context loads; with contexts loading on four threads at once those swaps used
to interleave and leave stderr silenced for good ("stt broker ready", the
access log and the shutdown lines all vanished). Run as a real process, the
way it is deployed, and read what it wrote to stderr.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from devkit.servers import free_port
from voicestack_common.audio import Pcm
from voicestack_common.encode import encode_audio


@pytest.mark.engine
def test_log_survives_four_workers(model_cache: Path, sentence: tuple[str, Pcm], tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "STT_PORT": str(port),
        "STT_WORKERS": "4",
        "STT_THREADS": "1",
        "STT_CACHE_DIR": str(model_cache),
        "STT_LOG_LEVEL": "INFO",
        "STT_LOG_FORMAT": "json",
    }
    log = tmp_path / "stderr.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "stt_broker.cli", "serve"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
            wav = encode_audio(sentence[1], "wav")
            answer = httpx.post(url + "/v1/transcribe", files={"file": ("a.wav", wav)}, timeout=120)
            assert answer.status_code == 200
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
    records = [json.loads(line) for line in log.read_text(errors="replace").splitlines() if line.startswith("{")]
    messages = [str(r.get("message", "")) for r in records]
    ready = [r for r in records if r.get("message") == "stt broker ready"]
    assert ready, messages
    assert (ready[0]["workers"], ready[0]["threads"]) == (4, 1)
    assert any("POST /v1/transcribe" in m for m in messages), messages
    assert any("shutdown complete" in m or "Finished server process" in m for m in messages), messages
