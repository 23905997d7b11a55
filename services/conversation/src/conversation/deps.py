"""Typed dependencies: the lifespan's resources and the caller's identity."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header
from starlette.requests import HTTPConnection

from conversation.deliveries import Deliveries
from conversation.metrics import ConversationMetrics
from conversation.responders.base import Responder
from conversation.settings import ConversationSettings
from conversation.store import Store
from voicestack_common.errors import InvalidRequest

OWNER_HEADER = "X-Voicestack-Owner"
# Without API keys every caller is the same owner: conversations are the stack's, not a device's.
DEFAULT_OWNER = "anonymous"
_OWNER = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")


@dataclass(frozen=True, slots=True)
class Service:
    """Everything the lifespan opens."""

    settings: ConversationSettings
    store: Store
    responders: dict[str, Responder]
    metrics: ConversationMetrics
    deliveries: Deliveries


def get_service(connection: HTTPConnection) -> Service:
    """The lifespan's resources."""
    service: Service = connection.state.service
    return service


ServiceDep = Annotated[Service, Depends(get_service)]


def owner(x_voicestack_owner: Annotated[str | None, Header()] = None) -> str:
    """Whose conversations a call acts on: the gateway passes the API key's identity."""
    value = (x_voicestack_owner or DEFAULT_OWNER).strip()
    if not _OWNER.match(value):
        raise InvalidRequest(f"{OWNER_HEADER} must match {_OWNER.pattern}", code="invalid_owner")
    return value


OwnerDep = Annotated[str, Depends(owner)]
