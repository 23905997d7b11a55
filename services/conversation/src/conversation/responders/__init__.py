"""Responders: who answers. ``build_responders`` makes the ones the settings allow."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from conversation.responders.base import Responder
from conversation.settings import ConversationSettings


def build_responders(settings: ConversationSettings, registry: CollectorRegistry | None = None) -> dict[str, Responder]:
    """One instance per allowed responder, by name (``start`` them before use)."""
    built: dict[str, Responder] = {}
    for name in settings.responders:
        if name == "echo":
            from conversation.responders.echo import EchoResponder

            built[name] = EchoResponder()
        elif name == "local":
            from conversation.responders.local import LocalResponder

            built[name] = LocalResponder(settings, registry)
        elif name == "openai":
            from conversation.responders.openai import OpenAIResponder

            built[name] = OpenAIResponder(settings)
        elif name == "webhook":
            from conversation.responders.webhook import WebhookResponder

            built[name] = WebhookResponder(settings)
    return built
