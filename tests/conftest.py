"""Fixtures shared by every test tier."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devkit.servers import free_port
from devkit.speech import REPO, TEST_CACHE, kokoro_speech
from voicestack_common.audio import Pcm

# The conversation service answers with `echo` in tests unless a test names another responder: with the
# bundled LLM at hand its default (`auto`) picks `local`, whose words a test cannot know in advance.
os.environ.setdefault("CONVERSATION_RESPONDER", "echo")
# Two test workers share two cores: Kokoro's ONNX threads must not spin-wait on a core the other
# worker's engines need (TtsSettings.cpu_spinning).
os.environ.setdefault("TTS_CPU_SPINNING", "false")

SENTENCE = "The quick brown fox jumps over the lazy dog."
TWO_SENTENCES = "Please call me back tomorrow morning. The meeting starts at noon."


@pytest.fixture(scope="session")
def model_cache() -> Path:
    """Converted and assembled models, kept between runs (nothing here is downloaded)."""
    path = TEST_CACHE / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def sentence() -> Iterator[tuple[str, Pcm]]:
    """A clear Kokoro sentence (24 kHz) and its text."""
    return SENTENCE, kokoro_speech(SENTENCE)


@pytest.fixture(scope="session")
def two_sentences() -> Iterator[tuple[str, Pcm]]:
    """Two Kokoro sentences, a man's voice, about five seconds."""
    return TWO_SENTENCES, kokoro_speech(TWO_SENTENCES, voice="jm_kumo")


@pytest.fixture(scope="session")
def openai_server() -> Iterator[str]:
    """tests/conversation/openai_server.py as its own process; yields its ``/v1`` base URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.conversation.openai_server", "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/requests", timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the OpenAI-style test server did not start") from None
                time.sleep(0.05)
        yield f"{base}/v1"
    finally:
        process.terminate()
        process.wait(10)
        if process.stderr is not None:
            process.stderr.close()


# The modules that take longest, in that order, run first: with ``-n 2`` (scripts/test.sh) a worker
# that draws one of them late would run alone at the end. Measured on the 2-core VM, 2026-12-07.
LONGEST_FIRST = (
    "tests/reliability/test_load.py",
    "tests/reliability/test_leaks.py",
    "tests/stack/test_up_e2e.py",
    "tests/reliability/test_fault_stack.py",
    "tests/gateway/test_conversations.py",
    "tests/reliability/test_fuzz_http.py",
    "tests/realtime/test_conversation.py",
    "tests/reliability/test_fault_mqtt.py",
    "tests/stt_broker/test_wer.py",
)


def pytest_configure(config: pytest.Config) -> None:
    """An xdist worker inherits ``COLUMNS=80`` from execnet; without it the CLI's tables take the width
    each test asks for, as in a plain run."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ.pop("COLUMNS", None)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest modules first (``--dist loadfile --no-loadscope-reorder`` keeps this order)."""
    rank = {path: index for index, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))
