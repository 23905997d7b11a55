"""Responders: ``openai`` against a real streaming server process, ``webhook`` against a real server,
and the caps and error codes of a turn when a responder fails, stalls or never stops."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from fastapi.testclient import TestClient

from conversation.app import create_app
from conversation.responders.base import ReplyRequest, ResponderInvalid, ResponderUnavailable
from conversation.responders.openai import OpenAIResponder
from conversation.store import HistoryItem
from devkit.servers import serve
from tests.conversation.conftest import conversation_settings
from tests.conversation.test_api import events


def collect(responder: OpenAIResponder, text: str, **options: Any) -> str:
    async def main() -> str:
        request = ReplyRequest(
            "c", text, [HistoryItem("user", "hi"), HistoryItem("assistant", "hello")], options=options
        )
        try:
            return "".join([piece async for piece in responder.reply(request)])
        finally:
            await responder.aclose()

    return asyncio.run(main())


def test_server_speaks_the_protocol(openai_server: str) -> None:
    """The test server is checked by the openai SDK itself, streaming and not."""
    client = openai.OpenAI(base_url=openai_server, api_key="sk-test", max_retries=0)
    stream = client.chat.completions.create(
        model="llama3.1", messages=[{"role": "user", "content": "Hello there."}], stream=True
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "Model heard: Hello there. Goodbye."
    whole = client.chat.completions.create(model="llama3.1", messages=[{"role": "user", "content": "Hi"}])
    assert whole.choices[0].message.content == "Model heard: Hi. Goodbye."


def test_openai_responder_streams_with_history_and_options(openai_server: str, sqlite_url: str) -> None:
    settings = conversation_settings(
        sqlite_url, openai_base_url=openai_server, openai_api_key="sk-secret", openai_model="llama3.1"
    )
    assert collect(OpenAIResponder(settings), "What is the weather", temperature=0.2) == (
        "Model heard: What is the weather. Goodbye."
    )
    sent = httpx.get(openai_server.removesuffix("/v1") + "/requests").json()[-1]
    assert sent["authorization"] == "Bearer sk-secret"
    body = sent["body"]
    assert body["stream"] is True
    assert body["model"] == "llama3.1"
    assert body["temperature"] == 0.2
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user"]


def test_turn_options_reach_the_model_server(openai_server: str, sqlite_url: str) -> None:
    """A turn's own options (allowed by the server) become the chat-completions request's system message,
    temperature and max_tokens; the next turn without options gets the server's defaults back."""
    settings = conversation_settings(
        sqlite_url,
        responder="openai",
        openai_base_url=openai_server,
        allowed_options=["temperature", "max_tokens", "system_prompt"],
    )
    options = {"system_prompt": "Answer like a pirate.", "temperature": 0.25, "max_tokens": 42}
    with TestClient(create_app(settings)) as client:
        answer = client.post("/v1/conversations/o/turns", json={"text": "Ahoy", "responder": {"options": options}})
        assert events(answer.text)[-1][0] == "done"
        sent = httpx.get(openai_server.removesuffix("/v1") + "/requests").json()[-1]["body"]
        assert sent["messages"][0] == {"role": "system", "content": "Answer like a pirate."}
        assert (sent["temperature"], sent["max_tokens"]) == (0.25, 42)
        assert events(client.post("/v1/conversations/o/turns", json={"text": "Again"}).text)[-1][0] == "done"
        sent = httpx.get(openai_server.removesuffix("/v1") + "/requests").json()[-1]["body"]
        assert sent["messages"][0] == {"role": "system", "content": settings.openai_system_prompt}
        assert (sent["temperature"], sent["max_tokens"]) == (settings.openai_temperature, settings.openai_max_tokens)
        assert [m["content"] for m in sent["messages"][1:]] == ["Ahoy", "Model heard: Ahoy. Goodbye.", "Again"]


def test_openai_responder_errors(openai_server: str, sqlite_url: str) -> None:
    settings = conversation_settings(sqlite_url, openai_base_url=openai_server)
    with pytest.raises(ResponderUnavailable, match="overloaded"):
        collect(OpenAIResponder(settings), "please fail")
    with pytest.raises(ResponderInvalid):
        collect(OpenAIResponder(settings), "garbage please")


def _turn(settings: Any, text: str, responder: str = "openai") -> list[tuple[str, dict[str, Any]]]:
    with TestClient(create_app(settings)) as client:
        answer = client.post("/v1/conversations/c/turns", json={"text": text, "responder": {"name": responder}})
        assert answer.status_code == 200
        found = events(answer.text)
        stored = client.get("/v1/conversations/c").json()["messages"]
        found.append(("stored", {"messages": stored}))
        return found


@pytest.mark.parametrize(
    ("text", "overrides", "code"),
    [
        ("please fail", {}, "responder_unavailable"),
        ("garbage", {}, "responder_invalid_response"),
        ("slow", {"openai_timeout": 0.5}, "responder_timeout"),
        ("slow", {"reply_timeout": 0.5}, "responder_timeout"),
    ],
)
def test_failed_reply_keeps_the_user_message(
    openai_server: str, sqlite_url: str, text: str, overrides: dict[str, Any], code: str
) -> None:
    settings = conversation_settings(
        sqlite_url, openai_base_url=openai_server, allowed_responders=["echo", "openai"], **overrides
    )
    found = _turn(settings, text)
    assert found[-2][0] == "error"
    assert found[-2][1]["error"]["code"] == code
    stored = found[-1][1]["messages"]
    assert stored[0]["role"] == "user"
    assert stored[0]["text"] == text
    assert stored[1]["status"] == "error"
    assert stored[1]["error_code"] == code


def test_unreachable_model_server(sqlite_url: str) -> None:
    from devkit.servers import free_port

    settings = conversation_settings(
        sqlite_url, responder="openai", openai_base_url=f"http://127.0.0.1:{free_port()}/v1"
    )
    found = _turn(settings, "hello")
    assert found[-2][1]["error"]["code"] == "responder_unavailable"


def test_endless_stream_is_cut_at_the_length_cap(openai_server: str, sqlite_url: str) -> None:
    settings = conversation_settings(sqlite_url, responder="openai", openai_base_url=openai_server, max_reply_chars=300)
    found = _turn(settings, "endless")
    assert found[-2][0] == "done"
    assert found[-2][1]["truncated"]
    assert found[-2][1]["reason"] == "length_limit"
    assert len(found[-2][1]["message"]["text"]) == 300
    assert found[-1][1]["messages"][1]["status"] == "truncated"


def test_endless_stream_is_cut_at_the_time_cap(openai_server: str, sqlite_url: str) -> None:
    settings = conversation_settings(
        sqlite_url, responder="openai", openai_base_url=openai_server, max_reply_chars=10**6, reply_timeout=0.5
    )
    found = _turn(settings, "endless")
    assert found[-2][1]["truncated"]
    assert found[-2][1]["reason"] == "time_limit"


@pytest.fixture(scope="module")
def webhook() -> Iterator[str]:
    """A real webhook server answering in each of the shapes the responder accepts."""
    app = FastAPI()

    @app.post("/hook")
    async def hook(request: Request) -> Response:
        body = await request.json()
        text = body["text"]
        if text == "json":
            return JSONResponse({"reply": f"JSON answer with {len(body['history'])} earlier messages."})
        if text == "sse":

            async def events() -> AsyncIterator[str]:
                for part in ("Streamed ", "by SSE."):
                    yield f"data: {part}\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")
        if text == "binary":
            return Response(b"\x00\x01", media_type="image/png")
        if text == "bad json":
            return JSONResponse({"nothing": 1})
        if text == "options":
            return JSONResponse({"text": f"Options: {body['options']}"})

        async def plain() -> AsyncIterator[str]:
            for part in ("Plain ", "text ", "stream."):
                yield part
                await asyncio.sleep(0.01)

        return StreamingResponse(plain(), media_type="text/plain")

    @app.get("/readyz")
    async def ready() -> PlainTextResponse:
        return PlainTextResponse("ok")

    with serve(app) as url:
        yield f"{url}/hook"


@pytest.mark.parametrize(
    ("text", "reply"),
    [("json", "JSON answer with 0 earlier messages."), ("sse", "Streamed by SSE."), ("plain", "Plain text stream.")],
)
def test_webhook_answers(webhook: str, sqlite_url: str, text: str, reply: str) -> None:
    settings = conversation_settings(sqlite_url, responder="webhook", webhook_url=webhook)
    found = _turn(settings, text, "webhook")
    assert found[-2][0] == "done"
    assert found[-2][1]["message"]["text"] == reply


def test_webhook_gets_the_turn_options(webhook: str, sqlite_url: str) -> None:
    settings = conversation_settings(
        sqlite_url, responder="webhook", webhook_url=webhook, allowed_options=["temperature", "system_prompt"]
    )
    with TestClient(create_app(settings)) as client:
        body = {"text": "options", "responder": {"options": {"temperature": 0.5, "system_prompt": "Be brief."}}}
        found = events(client.post("/v1/conversations/w/turns", json=body).text)
    assert found[-1][1]["message"]["text"] == "Options: {'temperature': 0.5, 'system_prompt': 'Be brief.'}"


@pytest.mark.parametrize("text", ["binary", "bad json"])
def test_webhook_garbage(webhook: str, sqlite_url: str, text: str) -> None:
    settings = conversation_settings(sqlite_url, responder="webhook", webhook_url=webhook)
    found = _turn(settings, text, "webhook")
    assert found[-2][1]["error"]["code"] == "responder_invalid_response"
