"""``POST /v1/synthesize``: the integration guide's synthesis, base64 audio in JSON."""

from __future__ import annotations

import base64
import logging

from fastapi import APIRouter, Response

from tts_broker.deps import SynthesizerDep
from tts_broker.schemas import ERROR_RESPONSES, BrokerSynthesizeRequest
from voicestack_common.contracts.audio import audio_headers
from voicestack_common.contracts.tts import SYNTHESIZE_FORMATS, SynthesizeResponse
from voicestack_common.jsonbody import JsonBodyRoute

logger = logging.getLogger(__name__)
router = APIRouter(tags=["synthesis"], route_class=JsonBodyRoute)


@router.post(
    "/synthesize",
    summary="Synthesize speech, returned as base64 in JSON",
    response_model=SynthesizeResponse,
    responses=ERROR_RESPONSES,
)
async def synthesize(
    body: BrokerSynthesizeRequest, synthesizer: SynthesizerDep, response: Response
) -> SynthesizeResponse:
    """``{audio_base64, audio_sample_rate, audio_duration_seconds, voice, speed}``; WAV unless asked."""
    job = await synthesizer.job(
        body.text, body.voice, body.lang_code, body.speed, body.format, SYNTHESIZE_FORMATS, body.model
    )
    result = await synthesizer.synthesize(job)
    logger.info(
        "synthesized",
        extra={
            "characters": len(body.text),
            "format": job.format,
            "voice": job.request.voice.spec,
            "model": job.model,
            "audio_seconds": round(result.duration, 3),
        },
    )
    response.headers.update(audio_headers(seconds=result.duration))
    return SynthesizeResponse(
        audio_base64=base64.b64encode(result.audio).decode("ascii"),
        audio_sample_rate=result.sample_rate,
        audio_duration_seconds=round(result.duration, 3),
        voice=job.request.voice.spec,
        speed=job.request.speed,
    )
