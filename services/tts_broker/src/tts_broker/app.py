"""The TTS broker's app factory (``uvicorn --factory tts_broker.app:create_app``)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI, Request

from tts_broker import __version__
from tts_broker.cache import ResultCache
from tts_broker.catalog import build_catalog
from tts_broker.engines.base import TtsEngine
from tts_broker.metrics import TtsMetrics
from tts_broker.routes import models, speech, synthesize, voices
from tts_broker.settings import TtsSettings
from tts_broker.synthesizer import Defaults, EngineTraits, Synthesizer
from tts_broker.wyoming import wyoming_server
from voicestack_common.errors import VoicestackError
from voicestack_common.model_registry import ModelRegistry
from voicestack_common.service import Readiness, create_service_app
from voicestack_common.workers import pool_checks, pool_ready

logger = logging.getLogger(__name__)


def create_app(settings: TtsSettings | None = None) -> FastAPI:
    """Build the broker; the default model loads in the lifespan, before the first request."""
    settings = settings or TtsSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        catalog = await anyio.to_thread.run_sync(build_catalog, settings)
        registry = app.state.http_metrics.registry
        models: ModelRegistry[TtsEngine] = ModelRegistry(
            "tts",
            catalog.entries,
            defaults=[catalog.default],
            ttl=None if settings.model_ttl < 0 else settings.model_ttl,
            memory_limit=settings.model_memory_limit_mb * 2**20 or None,
            metrics_registry=registry,
        )
        try:
            await models.start()
            default_pool = models.pool(catalog.default)
            assert default_pool is not None
            traits = EngineTraits.of(default_pool.engines[0])
            cache = ResultCache(settings.cache_max_entries, settings.cache_max_bytes)
            synthesizer = Synthesizer(
                models,
                catalog.default,
                traits,
                cache,
                TtsMetrics(registry, models, cache),
                Defaults(
                    settings.default_lang_code,
                    settings.default_speed,
                    settings.max_text_length,
                    settings.inference_timeout,
                    settings.default_voice,
                    tuple(settings.voices) if settings.voices else None,
                    settings.openai_voices,
                ),
            )
            try:
                voice_catalog = await synthesizer.catalog()
                voice_info: dict[str, Any] = {
                    "voices": len(voice_catalog.offered),
                    "default_voice": voice_catalog.default.spec,
                }
            except VoicestackError as exc:  # a remote server may come up after us
                voice_info = {"voices_error": exc.message}
            logger.info(
                "tts broker ready",
                extra={
                    "engine": synthesizer.backend,
                    "model": synthesizer.model,
                    "models": models.ids,
                    "workers": settings.workers,
                    "threads": settings.intra_op_threads,
                    "provider": traits.provider,
                    **voice_info,
                },
            )
            async with wyoming_server(settings, synthesizer, app.state.http_metrics):
                yield {"synthesizer": synthesizer}
        finally:
            await models.close()

    async def readiness(request: Request) -> Readiness:
        synthesizer: Synthesizer = request.state.synthesizer
        models = synthesizer.models
        pool = models.pool(synthesizer.model)
        if pool is None:
            return Readiness(ready=False, checks={"model_loaded": False, "model": synthesizer.model})
        checks = await pool_checks(pool, synthesizer.backend, synthesizer.model)
        checks["models_loaded"] = models.loaded_ids
        try:
            voice_catalog = await synthesizer.catalog()
            checks.update(
                voices=len(voice_catalog.offered),
                default_voice=voice_catalog.default.spec,
                configured_default_voice=voice_catalog.configured_default,
                default_voice_fallback=voice_catalog.default_is_fallback,
            )
        except VoicestackError as exc:
            checks.update(voices=0, voices_error=exc.message)
        ready = pool_ready(checks) and checks["voices"] > 0
        return Readiness(ready=ready, checks=checks)

    app = create_service_app(
        title="tts-broker",
        version=__version__,
        settings=settings,
        namespace="tts",
        lifespan=lifespan,
        readiness=readiness,
        description="Text-to-speech on Kokoro: the integration guide's `/v1/synthesize` and `/v1/voices`, "
        "and OpenAI's `/v1/audio/speech`, streamed as the audio is made.",
    )
    app.include_router(synthesize.router, prefix="/v1")
    app.include_router(speech.router, prefix="/v1")
    app.include_router(voices.router, prefix="/v1")
    app.include_router(models.router, prefix="/v1")
    return app
