"""The broker's model catalog: which models it offers, how each one loads, and which serves a request.

STT_MODELS=tiny.en,base   → one ``CatalogEntry`` each (ggml prepared on first use)
STT_MODEL_PATH=file       → that file is an entry too, and the default
STT_MODEL=auto            → ``ModelChoice``: English on a small CPU → the English-only model,
                            everything else (no language included) → the multilingual one
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio

from stt_broker.engines import engine_factory
from stt_broker.engines.base import SttEngine
from stt_broker.models import (
    BUNDLED_MODEL_ID,
    MULTILINGUAL_MODEL_ID,
    ModelError,
    ResolvedModel,
    prepare_bundled_ggml,
    prepare_multilingual_ggml,
    quantize_model,
    resolve_model,
)
from stt_broker.settings import SttSettings
from stt_broker.sizing import ThreadBudget, usable_cores
from voicestack_common.errors import NotReady
from voicestack_common.model_registry import CatalogEntry
from voicestack_common.workers import WorkerPool, running_pool

# f16 ggml sizes of the offline models, for the memory estimate before they are first converted.
_F16_BYTES = {BUNDLED_MODEL_ID: 77_704_698, MULTILINGUAL_MODEL_ID: 147_951_465}
_QUANT_RATIO = {"f16": 1.0, "q8_0": 0.55, "q5_1": 0.4, "q5_0": 0.37}
# whisper.cpp loads the weights into every context and adds its compute buffers: tiny.en's 78 MB
# file peaks at about 200 MB per context, so a context is estimated at 2.5x its file.
CONTEXT_MEMORY_FACTOR = 2.5
ALIAS = "whisper-1"
_QUANT = re.compile(r"^(?P<base>.+)-(?P<quant>q\d_\d)$")

Opener = Callable[[], AbstractAsyncContextManager[WorkerPool[SttEngine]]]


def split_quantization(model_id: str) -> tuple[str, str]:
    """``base-q5_1`` → ``("base", "q5_1")``; ``tiny.en`` → ``("tiny.en", "f16")``."""
    match = _QUANT.match(model_id)
    return (match["base"], match["quant"]) if match else (model_id, "f16")


def languages_of(model_id: str) -> tuple[str, ...] | None:
    """``("en",)`` for an English-only Whisper (``*.en``); ``None`` (any, detected) otherwise."""
    return ("en",) if split_quantization(model_id)[0].endswith(".en") else None


def ggml_locator(settings: SttSettings, model_id: str) -> Callable[[], Path]:
    """A blocking function that returns the model's ggml file, preparing it when it ships offline."""
    base, quant = split_quantization(model_id)
    cache = settings.cache_dir
    if base == BUNDLED_MODEL_ID:
        return lambda: prepare_bundled_ggml(cache, quantization=quant)
    if base == MULTILINGUAL_MODEL_ID:
        return lambda: prepare_multilingual_ggml(cache, quant)
    path = cache / "whisper" / f"ggml-{model_id}.bin"
    source = cache / "whisper" / f"ggml-{base}.bin"
    if not path.is_file() and not (quant != "f16" and source.is_file()):
        raise ModelError(
            f"STT_MODELS names {model_id!r}, which is neither bundled ({BUNDLED_MODEL_ID}, {MULTILINGUAL_MODEL_ID}) "
            f"nor in the cache as {path}: run `stt-broker models pull {model_id}` or drop it"
        )

    def locate() -> Path:
        return path if path.is_file() else quantize_model(source, quant, path)

    return locate


def estimate_bytes(settings: SttSettings, model_id: str, path: Path | None = None) -> int:
    """Memory of a loaded model: its file (or its known size) per context, times the context factor."""
    base, quant = split_quantization(model_id)
    if path is None or not path.is_file():
        path = settings.cache_dir / "whisper" / f"ggml-{model_id}.bin"
    size = path.stat().st_size if path.is_file() else int(_F16_BYTES.get(base, 0) * _QUANT_RATIO.get(quant, 1.0))
    workers, _ = settings.layout()
    return int(size * CONTEXT_MEMORY_FACTOR * workers)


def _opener(settings: SttSettings, model_id: str, locate: Callable[[], Path], budget: ThreadBudget | None) -> Opener:
    @asynccontextmanager
    async def open_pool() -> AsyncIterator[WorkerPool[SttEngine]]:
        workers, _ = settings.layout()
        stack = AsyncExitStack()
        try:
            path = await anyio.to_thread.run_sync(locate)
            factory = engine_factory(settings, ResolvedModel(path, model_id), budget)
            pool = await stack.enter_async_context(running_pool("stt", factory, settings, size=workers))
        except (ModelError, OSError, RuntimeError, ValueError) as exc:
            # A model that cannot be prepared or loaded is the broker's problem, not the request's.
            raise NotReady(f"model {model_id} cannot be loaded: {exc}", code="model_unavailable") from exc
        async with stack:
            yield pool

    return open_pool


@dataclass(frozen=True, slots=True)
class ModelChoice:
    """Which catalog model serves a request that names none (``STT_MODEL``)."""

    ids: tuple[str, ...]
    fixed: str | None = None
    english: str | None = None
    """``auto`` only: the English-only model English requests get (unset: the rule is off here)."""
    multilingual: str | None = None

    @property
    def defaults(self) -> list[str]:
        """The models ``pick`` can return: loaded at start, never unloaded for idleness."""
        if self.fixed is not None:
            return [self.fixed]
        found = [m for m in (self.english, self.multilingual) if m is not None]
        return found or [self.ids[0]]

    def pick(self, language: str | None) -> str:
        """The default model for a request in ``language`` (``None``: to be detected)."""
        if self.fixed is not None:
            return self.fixed
        if language == "en" and self.english is not None:
            return self.english
        return self.multilingual or self.english or self.ids[0]


def model_choice(settings: SttSettings, ids: list[str], fixed: str | None = None) -> ModelChoice:
    """``STT_MODEL`` applied to the catalog ``ids``."""
    if fixed is None and settings.model != "auto":
        fixed = settings.quantized(settings.model)
    if fixed is not None:
        return ModelChoice(tuple(ids), fixed=fixed)
    english = next((m for m in ids if languages_of(m) == ("en",)), None)
    multilingual = next((m for m in ids if languages_of(m) is None), None)
    small_cpu = not settings.use_gpu and usable_cores() <= settings.auto_english_max_cores
    return ModelChoice(
        tuple(ids), english=english if small_cpu or multilingual is None else None, multilingual=multilingual
    )


def build_catalog(
    settings: SttSettings, budget: ThreadBudget | None = None
) -> tuple[list[CatalogEntry[SttEngine]], ModelChoice]:
    """The catalog the settings describe (blocking: it may prepare a configured model), and its choice rule.

    Every model's engines take their threads from ``budget`` (elastic threads), or from one budget
    made here when none is given.
    """
    budget = budget or settings.thread_budget()
    entries: list[CatalogEntry[SttEngine]] = []
    fixed: str | None = None
    if settings.engine != "whispercpp" or settings.model_path is not None:
        resolved = resolve_model(settings)
        # faster-whisper and remote serve their one model whatever STT_MODEL says.
        named = settings.engine == "whispercpp" and settings.model != "auto"
        fixed = settings.quantized(settings.model) if named else resolved.model_id
        entries.append(
            CatalogEntry(
                resolved.model_id,
                languages_of(resolved.model_id),
                _opener(settings, resolved.model_id, lambda: resolved.path, budget),
                estimate_bytes(settings, resolved.model_id, resolved.path),
            )
        )
    if settings.engine == "whispercpp":
        for model_id in settings.catalog_ids():
            if model_id not in {e.id for e in entries}:
                locate = ggml_locator(settings, model_id)
                entries.append(
                    CatalogEntry(
                        model_id,
                        languages_of(model_id),
                        _opener(settings, model_id, locate, budget),
                        estimate_bytes(settings, model_id),
                    )
                )
    ids = [e.id for e in entries]
    if fixed is not None and fixed not in ids:
        raise ModelError(f"STT_MODEL {fixed!r} is not in the catalog {ids}")
    return entries, model_choice(settings, ids, fixed)
