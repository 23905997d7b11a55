"""Engine construction from settings; each backend's heavy imports stay in its module."""

from __future__ import annotations

from collections.abc import Callable

from tts_broker.engines.base import TtsEngine
from tts_broker.models import ResolvedModel
from tts_broker.settings import TtsSettings


def engine_factory(settings: TtsSettings, model: ResolvedModel) -> Callable[[], TtsEngine]:
    """A zero-argument constructor: the pool calls it once per worker thread."""
    if settings.engine == "kokoro":
        from tts_broker.engines.kokoro import KokoroEngine

        files = model.files
        if files is None:
            raise ValueError("the kokoro engine needs model files")
        return lambda: KokoroEngine(
            files.model,
            files.voices,
            model_id=model.model_id,
            threads=settings.intra_op_threads,
            use_gpu=settings.use_gpu,
            cpu_memory_arena=settings.cpu_memory_arena,
            memory_patterns=settings.cpu_memory_patterns,
            spinning=settings.cpu_spinning,
        )
    from tts_broker.engines.remote import RemoteKokoroEngine

    return lambda: RemoteKokoroEngine(
        settings.remote_server, timeout=settings.remote_timeout, model=settings.remote_model, model_id=model.model_id
    )
