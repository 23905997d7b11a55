"""The STT broker's app factory (``uvicorn --factory stt_broker.app:create_app``)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI, Request

from stt_broker import __version__
from stt_broker.engines import engine_factory
from stt_broker.live.runtime import LiveConfig, LiveMetrics, LiveRuntime
from stt_broker.live.vad import load_silero
from stt_broker.models import resolve_model
from stt_broker.routes import models, stream, transcriptions
from stt_broker.settings import SttSettings
from stt_broker.transcriber import Limits, SttMetrics, Transcriber
from stt_broker.vad import SpeechDetector
from stt_broker.wyoming import wyoming_server
from voicestack_common.service import Readiness, create_service_app
from voicestack_common.workers import pool_checks, pool_ready, running_pool

logger = logging.getLogger(__name__)


def create_app(settings: SttSettings | None = None) -> FastAPI:
    """Build the broker; the model loads in the lifespan, before the first request."""
    settings = settings or SttSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        model = await anyio.to_thread.run_sync(resolve_model, settings)
        workers, threads = settings.layout()
        async with running_pool("stt", engine_factory(settings, model), settings, size=workers) as pool:
            engine = pool.engines[0]
            detector = (
                await anyio.to_thread.run_sync(
                    SpeechDetector, settings.vad_threshold, settings.vad_speech_pad_ms, settings.vad_min_gap_ms
                )
                if settings.vad
                else None
            )
            transcriber = Transcriber(
                pool,
                detector,
                Limits(settings.max_audio_seconds, settings.inference_timeout),
                SttMetrics(app.state.http_metrics.registry, pool),
                engine.backend,
                engine.model,
                engine.multilingual,
            )
            logger.info(
                "stt broker ready",
                extra={
                    "engine": engine.backend,
                    "model": engine.model,
                    "workers": workers,
                    "threads": threads,
                    "flash_attn": settings.flash_attn,
                    "beam_size": settings.beam_size,
                },
            )
            live = LiveRuntime(
                pool,
                await anyio.to_thread.run_sync(load_silero),
                LiveMetrics(app.state.http_metrics.registry),
                LiveConfig.from_settings(settings),
                model=engine.model,
                default_language=settings.default_language,
            )
            async with wyoming_server(settings, transcriber, app.state.http_metrics):
                yield {"transcriber": transcriber, "live": live}

    async def readiness(request: Request) -> Readiness:
        transcriber: Transcriber = request.state.transcriber
        checks = await pool_checks(transcriber.pool, transcriber.backend, transcriber.model)
        return Readiness(ready=pool_ready(checks), checks=checks)

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
