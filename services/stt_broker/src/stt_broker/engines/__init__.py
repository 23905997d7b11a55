"""Engine construction from settings; each backend's heavy imports stay in its module."""

from __future__ import annotations

from collections.abc import Callable

from stt_broker.engines.base import SttEngine
from stt_broker.models import ResolvedModel
from stt_broker.settings import SttSettings


def engine_factory(settings: SttSettings, model: ResolvedModel) -> Callable[[], SttEngine]:
    """A zero-argument constructor: the pool calls it once per worker thread."""
    if settings.engine == "whispercpp":
        from stt_broker.engines.whispercpp import WhisperCppEngine

        return lambda: WhisperCppEngine(
            model.path, threads=settings.threads, model_id=model.model_id, use_gpu=settings.use_gpu
        )
    if settings.engine == "faster-whisper":
        from stt_broker.engines.faster_whisper import FasterWhisperEngine

        return lambda: FasterWhisperEngine(
            model.path,
            threads=settings.threads,
            compute_type=settings.compute_type,
            device="cuda" if settings.use_gpu else "cpu",
            model_id=model.model_id,
        )
    from stt_broker.engines.remote import RemoteWhisperCppEngine

    return lambda: RemoteWhisperCppEngine(settings.remote_url, timeout=settings.remote_timeout, model_id=model.model_id)
