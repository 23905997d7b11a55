"""The models a client may name: the STT broker's, the TTS broker's and the conversation responders'.

Each source is asked at once; one that is down or answers nonsense is left out (and logged), so the
list stays a 200 with what answers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Literal

from pydantic import ValidationError

from gateway.conversations.client import ConversationClient
from gateway.deps import Gateway
from gateway.replicas import ReplicaSet
from voicestack_common.errors import VoicestackError
from voicestack_common.schemas import ModelCard, ModelList

logger = logging.getLogger(__name__)

Kind = Literal["stt", "tts", "llm"]
RESPONDER_OWNER = "voicestack/conversation"


async def broker_models(upstream: ReplicaSet, kind: Kind) -> list[ModelCard]:
    """A broker's ``GET /v1/models``, each card marked with what it does."""
    answer = ModelList.model_validate_json((await upstream.request("GET", "/v1/models")).content)
    return [card if card.kind else card.model_copy(update={"kind": kind}) for card in answer.data]


async def responder_models(client: ConversationClient) -> list[ModelCard]:
    """The conversation service's responders as ``llm`` cards (its own ``models`` list when it gives one)."""
    if client.upstream is None:
        return []
    answer = await client.responders()
    if answer.models is not None:
        return [card if card.kind else card.model_copy(update={"kind": "llm"}) for card in answer.models]
    created = int(time.time())
    return [
        ModelCard(id=name, created=created, owned_by=RESPONDER_OWNER, kind="llm", default=name == answer.default)
        for name in answer.allowed
    ]


async def _source(name: str, call: Awaitable[list[ModelCard]]) -> list[ModelCard]:
    try:
        return await call
    except (VoicestackError, ValidationError, ValueError) as exc:
        code = exc.code if isinstance(exc, VoicestackError) else "invalid_answer"
        logger.warning("models: the %s did not answer (%s); listing the others", name, code)
        return []


async def catalog(gateway: Gateway, conversations: ConversationClient) -> ModelList:
    """Every model the stack offers, STT first; a name listed twice is kept once (the first)."""
    found = await asyncio.gather(
        _source("STT broker", broker_models(gateway.stt, "stt")),
        _source("TTS broker", broker_models(gateway.tts, "tts")),
        _source("conversation service", responder_models(conversations)),
    )
    cards: dict[str, ModelCard] = {}
    for group in found:
        for card in group:
            cards.setdefault(card.id, card)
    return ModelList(data=list(cards.values()))


def find(models: ModelList, model_id: str) -> ModelCard | None:
    """The card named ``model_id``."""
    return next((card for card in models.data if card.id == model_id), None)
