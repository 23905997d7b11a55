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
from conversation.tools import Toolbox
from voicestack_common.contracts.conversation import (
    ANONYMOUS_OWNER,
    OWNER_HEADER,
    OWNER_PATTERN,
    RespondersOut,
    offered,
)
from voicestack_common.errors import InvalidRequest

_OWNER = re.compile(OWNER_PATTERN)


@dataclass(frozen=True, slots=True)
class Service:
    """Everything the lifespan opens."""

    settings: ConversationSettings
    store: Store
    responders: dict[str, Responder]
    metrics: ConversationMetrics
    deliveries: Deliveries
    toolbox: Toolbox | None = None
    """The tools of ``CONVERSATION_TOOLS_FILE`` (``None``: no file)."""

    @property
    def offered(self) -> RespondersOut:
        """The responders and options clients may choose (``GET /v1/responders``)."""
        settings = self.settings
        return offered(settings.responder, settings.responders, settings.allowed_options)


def get_service(connection: HTTPConnection) -> Service:
    """The lifespan's resources."""
    service: Service = connection.state.service
    return service


ServiceDep = Annotated[Service, Depends(get_service)]


def owner(x_voicestack_owner: Annotated[str | None, Header()] = None) -> str:
    """Whose conversations a call acts on: the gateway passes the API key's identity."""
    value = (x_voicestack_owner or ANONYMOUS_OWNER).strip()
    if not _OWNER.match(value):
        raise InvalidRequest(f"{OWNER_HEADER} must match {_OWNER.pattern}", code="invalid_owner")
    return value


OwnerDep = Annotated[str, Depends(owner)]
