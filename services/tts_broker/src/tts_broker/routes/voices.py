"""Voice lists (the integration guide's and Kokoro-FastAPI's) and OpenAI's model list."""

from __future__ import annotations

from fastapi import APIRouter, Request

from tts_broker.deps import SynthesizerDep
from tts_broker.routes.speech import OPENAI_MODELS
from tts_broker.schemas import KokoroVoice, KokoroVoiceList
from voicestack_common.contracts.tts import VoicesResponse
from voicestack_common.schemas import ModelCard, ModelList

router = APIRouter(tags=["voices"])
SERVICE_NAME = "Kokoro TTS"


@router.get("/voices", summary="Voices offered, and the default", response_model=VoicesResponse)
async def voices(synthesizer: SynthesizerDep) -> VoicesResponse:
    """``{voices, default_voice, service}`` as the integration guide has it."""
    catalog = await synthesizer.catalog()
    return VoicesResponse(voices=list(catalog.offered), default_voice=catalog.default.spec, service=SERVICE_NAME)


@router.get("/audio/voices", summary="Voices, as Kokoro-FastAPI lists them", response_model=KokoroVoiceList)
async def kokoro_voices(synthesizer: SynthesizerDep, legacy: bool = False) -> KokoroVoiceList:
    """``{"voices": [{"id", "name"}]}``, or plain names with ``?legacy=true``."""
    offered = (await synthesizer.catalog()).offered
    if legacy:
        return KokoroVoiceList(voices=list(offered))
    return KokoroVoiceList(voices=[KokoroVoice(id=name, name=name) for name in offered])


@router.get("/models", summary="Model names clients may send", response_model=ModelList)
async def models(synthesizer: SynthesizerDep, request: Request) -> ModelList:
    """The loaded model, under its own id and the names OpenAI and Kokoro-FastAPI clients use."""
    created = int(request.app.state.started_at)
    owner = f"voicestack/{synthesizer.backend}"
    names = dict.fromkeys((synthesizer.model, *OPENAI_MODELS))
    return ModelList(data=[ModelCard(id=name, created=created, owned_by=owner) for name in names])
