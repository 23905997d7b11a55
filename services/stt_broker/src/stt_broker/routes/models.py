"""``GET /v1/models``: the catalog, OpenAI-style, with what is loaded and what is the default."""

from __future__ import annotations

from fastapi import APIRouter, Request

from stt_broker.catalog import ALIAS
from stt_broker.deps import TranscriberDep
from stt_broker.languages import LANGUAGES
from voicestack_common.schemas import ModelCard, ModelList

router = APIRouter(tags=["models"])


@router.get("/models", summary="List the catalog's models", response_model=ModelList, response_model_exclude_none=True)
async def list_models(transcriber: TranscriberDep, request: Request) -> ModelList:
    """Every catalog model (``loaded``, ``default``, ``languages``), and ``whisper-1``, the alias OpenAI
    clients send, standing for the model a request with no language gets."""
    created = int(request.app.state.started_at)
    owner = f"voicestack/{transcriber.backend}"
    cards = transcriber.models.cards(created, owner, any_language=sorted(LANGUAGES))
    alias = ModelCard(id=ALIAS, created=created, owned_by=owner, kind="stt", alias_of=transcriber.default_model)
    return ModelList(data=[*cards, alias])
