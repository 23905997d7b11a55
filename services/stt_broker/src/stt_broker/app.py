"""The STT broker's app factory (``uvicorn --factory stt_broker.app:create_app``)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI, Request

from stt_broker import __version__
from stt_broker.catalog import build_catalog
from stt_broker.engines.base import SttEngine
from stt_broker.live.runtime import LiveConfig, LiveMetrics, LiveRuntime
from stt_broker.live.turn import load_turn_model
from stt_broker.live.vad import load_silero
from stt_broker.routes import models, stream, transcriptions
from stt_broker.settings import SttSettings
from stt_broker.transcriber import Limits, SttMetrics, Transcriber
from stt_broker.vad import SpeechDetector
from stt_broker.wyoming import wyoming_server
from voicestack_common.model_registry import ModelRegistry
from voicestack_common.service import Readiness, create_service_app
from voicestack_common.workers import pool_checks, pool_ready

logger = logging.getLogger(__name__)


def create_app(settings: SttSettings | None = None) -> FastAPI:
    """Build the broker; the default model(s) load in the lifespan, before the first request."""
    settings = settings or SttSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        budget = settings.thread_budget()
        entries, choice = await anyio.to_thread.run_sync(build_catalog, settings, budget)
        registry = app.state.http_metrics.registry
        models: ModelRegistry[SttEngine] = ModelRegistry(
            "stt",
            entries,
            defaults=choice.defaults,
            ttl=None if settings.model_ttl < 0 else settings.model_ttl,
            memory_limit=settings.model_memory_limit_mb * 2**20 or None,
            metrics_registry=registry,
        )
        workers, threads = settings.layout()
        try:
            await models.start()
            default_pool = models.pool(choice.defaults[0])
            assert default_pool is not None
            backend = default_pool.engines[0].backend
            detector = (
                await anyio.to_thread.run_sync(
                    SpeechDetector, settings.vad_threshold, settings.vad_speech_pad_ms, settings.vad_min_gap_ms
                )
                if settings.vad
                else None
            )
            transcriber = Transcriber(
                models,
                choice,
                detector,
                Limits(settings.max_audio_seconds, settings.inference_timeout),
                SttMetrics(registry, models, budget),
                backend,
            )
            logger.info(
                "stt broker ready",
                extra={
                    "engine": backend,
                    "models": models.ids,
                    "loaded": models.loaded_ids,
                    "workers": workers,
                    "threads": threads,
                    "elastic_threads": budget is not None,
                    "flash_attn": settings.flash_attn,
                    "beam_size": settings.beam_size,
                },
            )
            live = LiveRuntime(
                models,
                transcriber.choose,
                await anyio.to_thread.run_sync(load_silero),
                LiveMetrics(registry),
                LiveConfig.from_settings(settings),
                default_language=settings.default_language,
                turn_model=await anyio.to_thread.run_sync(load_turn_model, settings),
            )
            try:
                async with wyoming_server(settings, transcriber, app.state.http_metrics):
                    yield {"transcriber": transcriber, "live": live}
            finally:
                live.close()
        finally:
            await models.close()

    async def readiness(request: Request) -> Readiness:
        transcriber: Transcriber = request.state.transcriber
        models = transcriber.models
        default = transcriber.default_model
        pool = models.pool(default)
        if pool is None:
            return Readiness(ready=False, checks={"model_loaded": False, "model": default})
        checks = await pool_checks(pool, transcriber.backend, default)
        checks["models_loaded"] = models.loaded_ids
        ready = pool_ready(checks) and all(models.pool(m) is not None for m in models.defaults)
        return Readiness(ready=ready, checks=checks)

    app = create_service_app(
        title="stt-broker",
        version=__version__,
        settings=settings,
        namespace="stt",
        lifespan=lifespan,
        readiness=readiness,
        description="Speech-to-text on whisper.cpp: the integration guide's `/v1/transcribe` and "
        "OpenAI's `/v1/audio/transcriptions`, and live transcription over `WS /v1/stream`.",
    )
    app.include_router(transcriptions.router, prefix="/v1")
    app.include_router(models.router, prefix="/v1")
    app.include_router(stream.router, prefix="/v1")
    return app
