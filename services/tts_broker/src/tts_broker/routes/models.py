"""``GET /v1/models``: the catalog, OpenAI-style, with what is loaded and what is the default."""

from __future__ import annotations

from fastapi import APIRouter, Request

from tts_broker.catalog import ALIASES
from tts_broker.deps import SynthesizerDep
from voicestack_common.schemas import ModelCard, ModelList

router = APIRouter(tags=["models"])


@router.get("/models", summary="List the catalog's models", response_model=ModelList, response_model_exclude_none=True)
async def list_models(synthesizer: SynthesizerDep, request: Request) -> ModelList:
    """Every catalog model (``loaded``, ``default``, ``languages``), and the names OpenAI and
    Kokoro-FastAPI clients send (``tts-1``, ``tts-1-hd``, ``kokoro``, ...), standing for the default."""
    created = int(request.app.state.started_at)
    owner = f"voicestack/{synthesizer.backend}"
    models = synthesizer.models
    cards = models.cards(created, owner, any_language=synthesizer.languages())
    aliases = [
        ModelCard(id=alias, created=created, owned_by=owner, kind="tts", alias_of=synthesizer.model)
        for alias in ALIASES
        if alias not in models.ids
    ]
    return ModelList(data=[*cards, *aliases])
