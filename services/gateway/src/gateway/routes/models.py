"""``GET /v1/models``: what clients may send as ``model``, OpenAI's shape plus what each model is."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from gateway.conversations.state import ConversationsDep
from gateway.deps import GatewayDep, authenticate
from gateway.schemas import errors
from gateway.usecases import models
from voicestack_common.errors import VoicestackError
from voicestack_common.schemas import ModelCard, ModelList

router = APIRouter(tags=["models"], dependencies=[Depends(authenticate)])


class ModelNotFound(VoicestackError):
    """No model of that name is offered here."""

    status_code = 404
    default_code = "model_not_found"


@router.get(
    "/models",
    summary="Models of every kind: speech to text, text to speech, responders",
    response_model=ModelList,
    response_model_exclude_none=True,
    responses=errors(401),
)
async def list_models(gateway: GatewayDep, conversations: ConversationsDep) -> ModelList:
    """``{object: "list", data: [{id, object, created, owned_by, kind, loaded, default, alias_of, languages}]}``;
    a service that is down is left out (still 200)."""
    return await models.catalog(gateway, conversations.client)


@router.get(
    "/models/{model_id}",
    summary="One model",
    response_model=ModelCard,
    response_model_exclude_none=True,
    responses=errors(401, 404, e404="No model of that name (`model_not_found`)"),
)
async def get_model(model_id: str, gateway: GatewayDep, conversations: ConversationsDep) -> ModelCard:
    """One model's card; 404 ``model_not_found`` when no service offers it."""
    card = models.find(await models.catalog(gateway, conversations.client), model_id)
    if card is None:
        raise ModelNotFound(f"no model {model_id!r} here; GET /v1/models lists them")
    return card
