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
from tts_broker.engines import engine_factory
from tts_broker.metrics import TtsMetrics
from tts_broker.models import resolve_model
from tts_broker.routes import speech, synthesize, voices
from tts_broker.settings import TtsSettings
from tts_broker.synthesizer import Defaults, Synthesizer
from tts_broker.wyoming import wyoming_server
from voicestack_common.errors import VoicestackError
from voicestack_common.service import Readiness, create_service_app
from voicestack_common.workers import pool_checks, pool_ready, running_pool

logger = logging.getLogger(__name__)


def create_app(settings: TtsSettings | None = None) -> FastAPI:
    """Build the broker; the model loads in the lifespan, before the first request."""
    settings = settings or TtsSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        model = await anyio.to_thread.run_sync(resolve_model, settings)
        async with running_pool("tts", engine_factory(settings, model), settings) as pool:
            cache = ResultCache(settings.cache_max_entries, settings.cache_max_bytes)
            synthesizer = Synthesizer(
                pool,
                cache,
                TtsMetrics(app.state.http_metrics.registry, pool, cache),
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
                catalog = await synthesizer.catalog()
                voice_info: dict[str, Any] = {"voices": len(catalog.offered), "default_voice": catalog.default.spec}
            except VoicestackError as exc:  # a remote server may come up after us
                voice_info = {"voices_error": exc.message}
            logger.info(
                "tts broker ready",
                extra={
                    "engine": synthesizer.backend,
                    "model": synthesizer.model,
                    "workers": settings.workers,
                    "threads": settings.intra_op_threads,
                    "provider": getattr(synthesizer.engine, "provider", None),
                    **voice_info,
                },
            )
            async with wyoming_server(settings, synthesizer, app.state.http_metrics):
                yield {"synthesizer": synthesizer}

    async def readiness(request: Request) -> Readiness:
        synthesizer: Synthesizer = request.state.synthesizer
        checks = await pool_checks(synthesizer.pool, synthesizer.backend, synthesizer.model)
        try:
            catalog = await synthesizer.catalog()
            checks.update(
                voices=len(catalog.offered),
                default_voice=catalog.default.spec,
                configured_default_voice=catalog.configured_default,
                default_voice_fallback=catalog.default_is_fallback,
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
    return app
