"""``webhook``: POSTs the transcript and context to a URL (seed 002's second server); any text answer."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from conversation.responders.base import ReplyRequest, ResponderInvalid, ResponderTimeout, ResponderUnavailable
from conversation.settings import ConversationSettings
from voicestack_common.streaming import read_sse

_TEXT_KEYS = ("text", "reply", "message", "response", "content")


class WebhookResponder:
    """Answers with ``text/plain`` (streamed as it arrives), JSON ``{"text"}`` or SSE ``data:`` lines."""

    name = "webhook"

    def __init__(self, settings: ConversationSettings, client: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self.client = client or httpx.AsyncClient(timeout=httpx.Timeout(settings.webhook_timeout), trust_env=False)

    @staticmethod
    def body(request: ReplyRequest) -> dict[str, Any]:
        """The JSON the webhook gets."""
        return {
            "conversation_id": request.conversation_id,
            "user_id": request.user_id,
            "text": request.text,
            "language": request.language,
            "history": [{"role": item.role, "text": item.text} for item in request.history],
            "options": dict(request.options),
        }

    async def start(self) -> None:
        """Nothing to load: the webhook is reached per reply."""

    async def reply(self, request: ReplyRequest) -> AsyncIterator[str]:
        """The webhook's answer as text deltas."""
        headers = {}
        if token := self.settings.webhook_token.get_secret_value():
            headers["Authorization"] = f"Bearer {token}"
        try:
            async with self.client.stream(
                "POST", self.settings.webhook_url, json=self.body(request), headers=headers
            ) as response:
                if response.status_code >= 300:
                    await response.aread()
                    raise ResponderUnavailable(
                        f"the webhook answered {response.status_code}", details={"status": response.status_code}
                    )
                media = response.headers.get("content-type", "").split(";")[0].strip().lower()
                if media == "text/event-stream":
                    async for event in read_sse(response.aiter_lines()):
                        data = event.data
                        if data.strip() == "[DONE]":
                            return
                        yield _text(data) if data.lstrip().startswith("{") else data
                elif media == "application/json" or media.endswith("+json"):
                    await response.aread()
                    yield _text(response.text)
                elif media.startswith("text/") or not media:
                    async for piece in response.aiter_text():
                        yield piece
                else:
                    raise ResponderInvalid(f"the webhook answered {media}; expected text, JSON or SSE")
        except httpx.TimeoutException:
            raise ResponderTimeout(f"the webhook did not answer within {self.settings.webhook_timeout:g} s") from None
        except httpx.TransportError as exc:
            raise ResponderUnavailable(f"cannot reach the webhook: {type(exc).__name__}") from None

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()


def _text(data: str) -> str:
    try:
        value = json.loads(data)
    except ValueError:
        raise ResponderInvalid("the webhook's JSON answer does not parse") from None
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in _TEXT_KEYS:
            if isinstance(value.get(key), str):
                return str(value[key])
    raise ResponderInvalid(f"the webhook's JSON answer has none of {', '.join(_TEXT_KEYS)} as text")
