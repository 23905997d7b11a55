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
# The names OpenAI and Kokoro-FastAPI clients send, listed as aliases of the served model.
LISTED_ALIASES = ("tts-1", "tts-1-hd", "kokoro")


@router.get("/voices", summary="Voices offered, and the default", response_model=VoicesResponse)
async def voices(synthesizer: SynthesizerDep) -> VoicesResponse:
    """``{voices, default_voice, service}`` as the integration guide has it, and each voice's
    language, gender and availability in ``details``."""
    catalog = await synthesizer.catalog()
    return VoicesResponse(
        voices=list(catalog.offered),
        default_voice=catalog.default.spec,
        service=SERVICE_NAME,
        details=synthesizer.details(catalog),
    )


@router.get(
    "/audio/voices",
    summary="Voices, as Kokoro-FastAPI lists them",
    response_model=KokoroVoiceList,
    response_model_exclude_none=True,
)
async def kokoro_voices(synthesizer: SynthesizerDep, legacy: bool = False) -> KokoroVoiceList:
    """``{"voices": [{"id", "name", "lang_code", "language", "gender"}]}``, or plain names with ``?legacy=true``."""
    catalog = await synthesizer.catalog()
    if legacy:
        return KokoroVoiceList(voices=list(catalog.offered))
    return KokoroVoiceList(
        voices=[
            KokoroVoice(id=v.id, name=v.id, lang_code=v.lang_code, language=v.language, gender=v.gender)
            for v in synthesizer.details(catalog)
        ]
    )


@router.get(
    "/models", summary="Model names clients may send", response_model=ModelList, response_model_exclude_none=True
)
async def models(synthesizer: SynthesizerDep, request: Request) -> ModelList:
    """The loaded model, and the names OpenAI and Kokoro-FastAPI clients use for it."""
    created = int(request.app.state.started_at)
    owner = f"voicestack/{synthesizer.backend}"
    model = synthesizer.model
    cards = [
        ModelCard(
            id=model,
            created=created,
            owned_by=owner,
            kind="tts",
            loaded=True,
            default=True,
            languages=synthesizer.languages(),
        )
    ]
    for alias in (name for name in dict.fromkeys((*LISTED_ALIASES, *OPENAI_MODELS)) if name != model):
        cards.append(ModelCard(id=alias, created=created, owned_by=owner, kind="tts", alias_of=model))
    return ModelList(data=cards)
