"""The broker's model catalog: which Kokoro models it offers, how each loads, and which is the default.

TTS_MODELS=kokoro-82m-int8,kokoro-v1.0  → one ``CatalogEntry`` each (the bundled model, or ``ID.onnx``
                                          in the cache's ``kokoro/``, where ``models pull`` puts it)
TTS_MODEL_PATH=file                     → that file is an entry too, and the default
engine=remote                           → one entry: the remote server's model

Every model speaks with the same voices file.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio

from tts_broker.engines import engine_factory
from tts_broker.engines.base import TtsEngine
from tts_broker.models import (
    BUNDLED_MODEL_ID,
    KokoroFiles,
    ModelError,
    ResolvedModel,
    assemble_bundled_model,
    resolve_model,
    resolve_voices,
)
from tts_broker.settings import TtsSettings
from voicestack_common.errors import NotReady
from voicestack_common.model_registry import CatalogEntry
from voicestack_common.workers import WorkerPool, running_pool

# The names OpenAI and Kokoro-FastAPI clients send; each stands for the default model.
ALIASES = ("tts-1", "tts-1-hd", "kokoro", "gpt-4o-mini-tts", "gpt-4o-mini-tts-2025-12-15")
# The bundled int8 model's size, for the memory estimate before it is first assembled.
_BUNDLED_BYTES = 92_361_271
# ONNX Runtime holds the weights once per worker, plus its buffers for the longest text piece.
SESSION_MEMORY_FACTOR = 2.0

Opener = Callable[[], AbstractAsyncContextManager[WorkerPool[TtsEngine]]]


@dataclass(frozen=True, slots=True)
class TtsCatalog:
    """The entries, and the id of the default among them."""

    entries: list[CatalogEntry[TtsEngine]]
    default: str


def cached_model_path(settings: TtsSettings, model_id: str) -> Path:
    """Where a catalog id other than the bundled one is looked for: ``kokoro/ID.onnx`` in the cache."""
    return settings.cache_dir / "kokoro" / f"{model_id}.onnx"


def estimate_bytes(settings: TtsSettings, path: Path | None) -> int:
    """Memory of a loaded model: its file (or the bundled model's known size) per worker, times the factor."""
    size = path.stat().st_size if path is not None and path.is_file() else _BUNDLED_BYTES
    return int(size * SESSION_MEMORY_FACTOR * settings.workers)


def _opener(settings: TtsSettings, model_id: str, locate: Callable[[], KokoroFiles | None]) -> Opener:
    @asynccontextmanager
    async def open_pool() -> AsyncIterator[WorkerPool[TtsEngine]]:
        stack = AsyncExitStack()
        try:
            files = await anyio.to_thread.run_sync(locate)
            factory = engine_factory(settings, ResolvedModel(files, model_id))
            pool = await stack.enter_async_context(running_pool("tts", factory, settings))
        except (ModelError, OSError, RuntimeError, ValueError) as exc:
            # A model that cannot be assembled or loaded is the broker's problem, not the request's.
            raise NotReady(f"model {model_id} cannot be loaded: {exc}", code="model_unavailable") from exc
        async with stack:
            yield pool

    return open_pool


def kokoro_locator(settings: TtsSettings, model_id: str, voices: Path) -> tuple[Callable[[], KokoroFiles], Path]:
    """A blocking function that returns the model's files (assembling the bundled one), and its path."""
    cache = settings.cache_dir
    if model_id == BUNDLED_MODEL_ID:
        return lambda: KokoroFiles(assemble_bundled_model(cache), voices), cache / "kokoro" / f"{model_id}.onnx"
    path = cached_model_path(settings, model_id)
    if not path.is_file():
        raise ModelError(
            f"TTS_MODELS names {model_id!r}, which is neither bundled ({BUNDLED_MODEL_ID}) nor in the cache "
            f"as {path}: run `tts-broker models pull {model_id}.onnx` or drop it"
        )
    files = KokoroFiles(path, voices)
    return lambda: files, path


def build_catalog(settings: TtsSettings) -> TtsCatalog:
    """The catalog the settings describe (blocking: it may assemble the voices), and its default."""
    if settings.engine == "remote":
        model_id = resolve_model(settings).model_id
        return TtsCatalog([CatalogEntry(model_id, None, _opener(settings, model_id, lambda: None))], model_id)
    voices = resolve_voices(settings)
    entries: list[CatalogEntry[TtsEngine]] = []
    configured: str | None = None
    if settings.model_path is not None:
        configured = settings.model_id or settings.model_path.name.removesuffix(".onnx")
        files = KokoroFiles(settings.model_path, voices)
        opener = _opener(settings, configured, lambda: files)
        entries.append(CatalogEntry(configured, None, opener, estimate_bytes(settings, settings.model_path)))
    for model_id in settings.models:
        if model_id not in {e.id for e in entries}:
            locate, path = kokoro_locator(settings, model_id, voices)
            entries.append(
                CatalogEntry(model_id, None, _opener(settings, model_id, locate), estimate_bytes(settings, path))
            )
    ids = [e.id for e in entries]
    default = settings.model or configured or ids[0]
    if default not in ids:
        raise ModelError(f"TTS_MODEL {default!r} is not in the catalog {ids}")
    return TtsCatalog(entries, default)
