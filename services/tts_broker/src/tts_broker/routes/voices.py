"""Voice lists: the integration guide's and Kokoro-FastAPI's."""

from __future__ import annotations

from fastapi import APIRouter

from tts_broker.deps import SynthesizerDep
from tts_broker.schemas import KokoroVoice, KokoroVoiceList
from voicestack_common.contracts.tts import VoicesResponse

router = APIRouter(tags=["voices"])
SERVICE_NAME = "Kokoro TTS"


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
