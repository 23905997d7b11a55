"""Engine construction from settings; each backend's heavy imports stay in its module."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields

from stt_broker.engines.base import SttEngine
from stt_broker.engines.whispercpp import WhisperCppParams
from stt_broker.models import ResolvedModel
from stt_broker.settings import SttSettings
from stt_broker.sizing import ThreadBudget


def whispercpp_params(settings: SttSettings) -> WhisperCppParams:
    """The whisper.cpp parameters the settings name (defaults: whisper.cpp's own)."""
    names = {f.name for f in fields(WhisperCppParams)}
    return WhisperCppParams(**{name: getattr(settings, name) for name in names})


def engine_factory(
    settings: SttSettings, model: ResolvedModel, budget: ThreadBudget | None = None
) -> Callable[[], SttEngine]:
    """A zero-argument constructor: the pool calls it once per worker thread.

    With elastic threads, every engine it makes shares ``budget`` (the broker's, shared by all its
    models), or a budget of its own when none is given.
    """
    _, threads = settings.layout()
    if settings.engine == "whispercpp":
        from stt_broker.engines.whispercpp import WhisperCppEngine

        params = whispercpp_params(settings)
        shared = budget or settings.thread_budget()
        return lambda: WhisperCppEngine(
            model.path, threads=threads, budget=shared, model_id=model.model_id, params=params
        )
    if settings.engine == "faster-whisper":
        from stt_broker.engines.faster_whisper import FasterWhisperEngine

        return lambda: FasterWhisperEngine(
            model.path,
            threads=threads,
            compute_type=settings.compute_type,
            device="cuda" if settings.use_gpu else "cpu",
            model_id=model.model_id,
            beam_size=settings.beam_size,
            best_of=settings.best_of,
            temperature_inc=settings.temperature_inc,
        )
    from stt_broker.engines.remote import RemoteWhisperCppEngine

    return lambda: RemoteWhisperCppEngine(
        settings.remote_server, timeout=settings.remote_timeout, model_id=model.model_id
    )
