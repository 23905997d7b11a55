"""``GET /v1/models``: the served model, OpenAI-style."""

from __future__ import annotations

from fastapi import APIRouter, Request

from stt_broker.deps import TranscriberDep
from voicestack_common.schemas import ModelCard, ModelList

router = APIRouter(tags=["models"])


@router.get("/models", summary="List the served model", response_model=ModelList)
async def list_models(transcriber: TranscriberDep, request: Request) -> ModelList:
    """The loaded model (and ``whisper-1``, the alias OpenAI clients send)."""
    created = int(request.app.state.started_at)
    owner = f"voicestack/{transcriber.backend}"
    return ModelList(
        data=[ModelCard(id=model_id, created=created, owned_by=owner) for model_id in (transcriber.model, "whisper-1")]
    )
