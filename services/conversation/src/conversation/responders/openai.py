"""``openai``: any OpenAI-compatible ``/chat/completions`` endpoint, streamed (``stream: true``)."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx

from conversation.responders.base import (
    ReplyRequest,
    ResponderInvalid,
    ResponderTimeout,
    ResponderUnavailable,
    ToolCallRequest,
)
from conversation.settings import ConversationSettings
from voicestack_common.streaming import read_sse

logger = logging.getLogger(__name__)


class OpenAIResponder:
    """Streams chat completions from Ollama, llama.cpp's server, vLLM, LocalAI or OpenAI."""

    name = "openai"

    def __init__(self, settings: ConversationSettings, client: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self.url = f"{settings.openai_base_url}/chat/completions"
        self.client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(settings.openai_timeout), trust_env=False, follow_redirects=False
        )

    def body(self, request: ReplyRequest) -> dict[str, Any]:
        """The chat-completions request for ``request``."""
        options = request.options
        body: dict[str, Any] = {
            "model": options.get("model", self.settings.openai_model),
            "messages": request.chat(options.get("system_prompt", self.settings.openai_system_prompt)),
            "stream": True,
            "temperature": options.get("temperature", self.settings.openai_temperature),
            "max_tokens": options.get("max_tokens", self.settings.openai_max_tokens),
        }
        if request.tools:
            body["tools"] = request.tools
            body["tool_choice"] = request.tool_choice
        return body

    async def start(self) -> None:
        """Nothing to load: the model server is reached per reply."""

    async def reply(self, request: ReplyRequest) -> AsyncIterator[str | ToolCallRequest]:
        """The completion's content deltas as they stream in, then the tool calls it made (their
        ``delta.tool_calls`` fragments joined by index)."""
        headers = {"Accept": "text/event-stream"}
        if key := self.settings.openai_api_key.get_secret_value():
            headers["Authorization"] = f"Bearer {key}"
        try:
            async with self.client.stream("POST", self.url, json=self.body(request), headers=headers) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise ResponderUnavailable(
                        f"the model server answered {response.status_code}: {_reason(response)}",
                        details={"status": response.status_code},
                    )
                media = response.headers.get("content-type", "").split(";")[0].strip()
                calls = _ToolCalls()
                if media == "application/json":  # a server that ignored stream=true
                    await response.aread()
                    whole = _json(response.text)
                    text = _content(whole, "message")
                    if text:
                        yield text
                    calls.add(whole, "message")
                else:
                    async for event in read_sse(response.aiter_lines()):
                        data = event.data
                        if data.strip() == "[DONE]":
                            break
                        chunk = _json(data)
                        if "error" in chunk:
                            raise ResponderUnavailable(f"the model server reported an error: {_short(chunk['error'])}")
                        text = _content(chunk, "delta")
                        if text:
                            yield text
                        calls.add(chunk, "delta")
                for call in calls.made():
                    yield call
        except httpx.TimeoutException:
            raise ResponderTimeout(
                f"the model server did not answer within {self.settings.openai_timeout:g} s"
            ) from None
        except httpx.TransportError as exc:
            raise ResponderUnavailable(f"cannot reach the model server: {type(exc).__name__}") from None

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()


def _json(data: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:
        raise ResponderInvalid("the model server sent a chunk that is not JSON") from None
    if not isinstance(value, dict):
        raise ResponderInvalid("the model server sent a chunk that is not a JSON object")
    return value


def _content(chunk: dict[str, Any], key: str) -> str:
    """``choices[0][key].content`` ('' when a chunk carries none, as role-only and final chunks do)."""
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        raise ResponderInvalid("the model server sent a chunk without 'choices'")
    if not choices:
        return ""  # usage-only chunk
    part = choices[0].get(key) if isinstance(choices[0], dict) else None
    content = part.get("content") if isinstance(part, dict) else None
    if content is not None and not isinstance(content, str):
        raise ResponderInvalid(f"the model server sent a {key} whose content is not text")
    return content or ""


class _ToolCalls:
    """``tool_calls`` as they stream: each call's fragments (id and name first, then pieces of its
    arguments) under its ``index``."""

    def __init__(self) -> None:
        self.calls: dict[int, dict[str, str]] = {}

    def add(self, chunk: dict[str, Any], key: str) -> None:
        choices = chunk.get("choices") or [{}]
        part = choices[0].get(key) if isinstance(choices[0], dict) else None
        fragments = part.get("tool_calls") if isinstance(part, dict) else None
        if not fragments:
            return
        if not isinstance(fragments, list):
            raise ResponderInvalid("the model server sent 'tool_calls' that is not a list")
        for position, fragment in enumerate(fragments):
            if not isinstance(fragment, dict):
                raise ResponderInvalid("the model server sent a tool call that is not an object")
            index = fragment.get("index", position)
            call = self.calls.setdefault(
                index if isinstance(index, int) else position, {"id": "", "name": "", "arguments": ""}
            )
            function = fragment.get("function") or {}
            if fragment.get("id"):
                call["id"] = str(fragment["id"])
            if function.get("name"):
                call["name"] += str(function["name"])
            if function.get("arguments"):
                arguments = function["arguments"]
                call["arguments"] += arguments if isinstance(arguments, str) else json.dumps(arguments)

    def made(self) -> list[ToolCallRequest]:
        made = []
        for _, call in sorted(self.calls.items()):
            if not call["name"]:
                raise ResponderInvalid("the model server sent a tool call without a name")
            made.append(
                ToolCallRequest(call["id"] or f"call_{uuid.uuid4().hex[:24]}", call["name"], call["arguments"] or "{}")
            )
        return made


def _reason(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return _short(response.text)
    error = body.get("error") if isinstance(body, dict) else None
    return _short(error.get("message") if isinstance(error, dict) else error or body)


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text[:200]
