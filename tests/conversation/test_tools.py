"""Tools: the tools file, each kind of tool against real servers, and the turn loop that runs them
through a real OpenAI-style streaming server process that calls tools (tests/conversation/openai_server.py)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.testclient import TestClient

from conversation.app import create_app
from conversation.tools import Toolbox, call_key, load_tools
from devkit.servers import serve
from tests.conversation.conftest import conversation_settings
from tests.conversation.test_api import events

TOOLS_YAML = """
tools:
  - type: mqtt_publish
    name: set_light
    description: Turn the kitchen light on or off.
    topics: [home/kitchen/light/set]
  - type: http
    name: weather
    description: The weather now in a city.
    url: {url}/weather
    method: GET
    parameters: {{type: object, properties: {{city: {{type: string}}}}, required: [city], additionalProperties: false}}
    timeout: 1.5
  - type: get_time
"""


class ToolServer:
    """A real HTTP server for ``http`` tools: what it was asked, and a slow and a redirecting endpoint."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.cancelled = 0
        self.delay = 0.0
        app = FastAPI()

        @app.get("/weather")
        async def weather(request: Request) -> dict[str, Any]:
            self.calls.append({"query": dict(request.query_params), "key": request.headers.get("idempotency-key")})
            deadline = time.monotonic() + self.delay
            while time.monotonic() < deadline:
                if await request.is_disconnected():  # the caller dropped the request
                    self.cancelled += 1
                    return {}
                await asyncio.sleep(0.02)
            return {"city": request.query_params.get("city"), "sky": "sunny", "celsius": 21}

        @app.post("/echo")
        async def echo(request: Request) -> Any:
            return {"got": await request.json(), "padding": "x" * 5000}

        @app.get("/moved")
        async def moved() -> RedirectResponse:
            return RedirectResponse("http://127.0.0.1:9/elsewhere", status_code=302)

        self.app = app


@pytest.fixture(scope="module")
def tool_server() -> Iterator[tuple[ToolServer, str]]:
    server = ToolServer()
    with serve(server.app, ready_path=None) as url:
        yield server, url


@pytest.fixture
def tools_file(tmp_path: Path, tool_server: tuple[ToolServer, str]) -> Path:
    path = tmp_path / "tools.yaml"
    path.write_text(TOOLS_YAML.format(url=tool_server[1]))
    tool_server[0].calls.clear()
    tool_server[0].delay = 0.0
    return path


def run(toolbox: Toolbox, name: str, arguments: dict[str, Any] | str, key: str = "k1") -> Any:
    async def main() -> Any:
        try:
            text = arguments if isinstance(arguments, str) else json.dumps(arguments)
            return await toolbox.run(name, text, key)
        finally:
            await toolbox.aclose()

    return asyncio.run(main())


def box(path: Path, **overrides: Any) -> Toolbox:
    options: dict[str, Any] = {"bridge_url": "http://127.0.0.1:9", "timeout": 5.0, "max_result_chars": 4000}
    return Toolbox(load_tools(path), **{**options, **overrides})


def test_the_tools_file_is_checked_when_loaded(tmp_path: Path) -> None:
    path = tmp_path / "tools.yaml"
    cases = {
        "tools: [{type: http, name: a, url: 'ftp://x/y'}]": "url",
        "tools: [{type: http, name: a, url: 'http://x/y', parameters: {type: 12}}]": "parameters",
        "tools: [{type: get_time}, {type: get_time}]": "unique",
        "tools: [{type: shell, name: rm}]": "tools.0",
        "tools: [{type: mqtt_publish, name: m, topics: []}]": "topics",
        "tools: [{type: get_time, timezone: Mars/Olympus}]": "timezone",
        "tools: [unclosed": "cannot read",
    }
    for text, where in cases.items():
        path.write_text(text)
        with pytest.raises(ValueError, match=where):
            load_tools(path)
    path.write_text(json.dumps({"tools": [{"type": "get_time", "timezone": "Europe/Paris"}]}))  # JSON is YAML
    assert [tool.name for tool in load_tools(path)] == ["get_time"]


def test_http_tool_calls_only_its_url_with_checked_arguments(
    tools_file: Path, tool_server: tuple[ToolServer, str]
) -> None:
    server, url = tool_server
    outcome = run(box(tools_file), "weather", {"city": "Paris"}, key="key-1")
    assert outcome.status == "ok", outcome
    assert json.loads(outcome.result) == {"city": "Paris", "sky": "sunny", "celsius": 21}
    assert server.calls == [{"query": {"city": "Paris"}, "key": "key-1"}]

    for arguments, code in (
        ({"city": "Paris", "url": "http://evil.example/"}, "invalid_arguments"),  # not in the schema
        ({}, "invalid_arguments"),
        ("not json", "invalid_arguments"),
        ("[1, 2]", "invalid_arguments"),
    ):
        outcome = run(box(tools_file), "weather", arguments)
        assert (outcome.status, outcome.error_code) == ("refused", code), arguments
    outcome = run(box(tools_file), "rm_rf", {})
    assert (outcome.status, outcome.error_code) == ("refused", "tool_unknown")
    assert len(server.calls) == 1  # nothing refused reached the server

    extra = tools_file.parent / "more.yaml"
    extra.write_text(
        f"tools: [{{type: http, name: moved, url: '{url}/moved', method: GET}},"
        f" {{type: http, name: echo, url: '{url}/echo'}}]"
    )
    outcome = run(box(extra), "moved", {})
    assert (outcome.status, outcome.error_code) == ("error", "tool_failed")  # a redirect is not followed
    assert "302" in outcome.result
    outcome = run(box(extra, max_result_chars=100), "echo", {})
    assert outcome.status == "ok"
    assert len(outcome.result) == 100 + len(" [cut]")
    assert outcome.result.endswith("[cut]")


def test_a_slow_tool_times_out(tools_file: Path, tool_server: tuple[ToolServer, str]) -> None:
    server, _ = tool_server
    server.delay = 5.0
    outcome = run(box(tools_file), "weather", {"city": "Oslo"})
    assert (outcome.status, outcome.error_code) == ("timeout", "tool_timeout")
    assert 1.4 < outcome.seconds < 4.5  # the tool's own 1.5 s, not the default 5 s
    assert "1.5 s" in outcome.result


def test_mqtt_tool_refuses_other_topics_before_any_call(tools_file: Path) -> None:
    for topic in ("home/garage/door/set", "home/kitchen/light/#", "home/+/light/set"):
        outcome = run(box(tools_file), "set_light", {"topic": topic, "payload": "ON"})
        assert (outcome.status, outcome.error_code) == ("refused", "invalid_arguments"), topic  # enum of topics
    wild = tools_file.parent / "wild.yaml"
    wild.write_text("tools: [{type: mqtt_publish, name: lamp, topics: ['home/+/lamp/set']}]")
    outcome = run(box(wild), "lamp", {"topic": "home/garage/door/set", "payload": "ON"})
    assert (outcome.status, outcome.error_code) == ("refused", "topic_not_allowed")
    outcome = run(box(wild), "lamp", {"topic": "home/#", "payload": "ON"})
    assert (outcome.status, outcome.error_code) == ("refused", "topic_not_allowed")
    outcome = run(box(wild), "lamp", {"topic": "home/hall/lamp/set", "payload": "ON"})  # allowed: the bridge is down
    assert (outcome.status, outcome.error_code) == ("error", "tool_unavailable")


def test_get_time(tools_file: Path) -> None:
    outcome = run(box(tools_file), "get_time", {})
    assert outcome.status == "ok"
    assert str(datetime.now().year) in outcome.result
    assert run(box(tools_file), "get_time", {"zone": "x"}).error_code == "invalid_arguments"


def test_call_keys_are_stable_and_distinct() -> None:
    assert call_key("c1", "call_a") == call_key("c1", "call_a")
    assert len({call_key("c1", "call_a"), call_key("c2", "call_a"), call_key("c1", "call_b")}) == 3


@pytest.fixture
def service(tools_file: Path, openai_server: str, sqlite_url: str) -> Iterator[TestClient]:
    settings = conversation_settings(
        sqlite_url, responder="openai", openai_base_url=openai_server, tools_file=tools_file
    )
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def service_on_both(tools_file: Path, openai_server: str, database_url: str) -> Iterator[TestClient]:
    """The service on SQLite, then on a real PostgreSQL."""
    settings = conversation_settings(
        database_url, responder="openai", openai_base_url=openai_server, tools_file=tools_file
    )
    with TestClient(create_app(settings)) as client:
        yield client


def turn(client: TestClient, cid: str, **body: Any) -> list[tuple[str, dict[str, Any]]]:
    response = client.post(f"/v1/conversations/{cid}/turns", json=body)
    assert response.status_code == 200, response.text
    return events(response.text)


def sent_messages(openai_server: str) -> list[dict[str, Any]]:
    return httpx.get(openai_server.removesuffix("/v1") + "/requests").json()[-1]["body"]["messages"]


def test_a_turn_runs_the_tool_and_speaks_its_result(
    service: TestClient, tool_server: tuple[ToolServer, str], openai_server: str
) -> None:
    server, _ = tool_server
    got = turn(service, "w1", text="What is the weather in Paris?")
    kinds = [kind for kind, _ in got]
    assert kinds[:3] == ["turn", "delta", "tool_call"], kinds
    assert kinds[-1] == "done", kinds
    call = got[2][1]["call"]
    assert (call["name"], call["status"], call["kind"], json.loads(call["arguments"])) == (
        "weather",
        "running",
        "server",
        {"city": "Paris"},
    )
    result = next(data for kind, data in got if kind == "tool_result")
    assert result["call"]["status"] == "ok"
    assert result["replayed"] is False
    assert "sunny" in result["call"]["result"]
    text = "".join(data["text"] for kind, data in got if kind == "delta")
    assert text.startswith("Let me do that. Done: {")
    assert "sunny" in text
    # The model got the call and its result back, in OpenAI's form.
    messages = sent_messages(openai_server)
    assert messages[-2]["tool_calls"][0]["function"]["name"] == "weather"
    assert messages[-1] == {"role": "tool", "tool_call_id": call["call_id"], "content": result["call"]["result"]}
    stored = service.get("/v1/conversations/w1").json()["messages"][-1]
    assert [c["status"] for c in stored["tool_calls"]] == ["ok"]
    assert stored["text"] == text
    # The next turn's history carries the call, so the model knows what it did.
    turn(service, "w1", text="Thank you.")
    history = sent_messages(openai_server)
    assert any(m["role"] == "tool" and "sunny" in m["content"] for m in history)
    assert len(server.calls) == 1
    metrics = service.get("/metrics").text
    assert 'conversation_tool_calls_total{status="ok",tool="weather"} 1.0' in metrics


def test_a_retried_request_does_not_run_the_call_twice(
    service_on_both: TestClient, tool_server: tuple[ToolServer, str]
) -> None:
    server, service = tool_server[0], service_on_both
    first = turn(service, "w2", text="Weather please.")
    again = turn(service, "w2", text="Weather please.")  # the same request: the model makes the same call
    results = [data for kind, data in first + again if kind == "tool_result"]
    assert [r["replayed"] for r in results] == [False, True]
    assert results[0]["call"]["call_id"] == results[1]["call"]["call_id"]
    assert len(server.calls) == 1
    assert "tool_call" not in [kind for kind, _ in again]  # nothing started


def test_a_slow_tool_gets_an_apology(service: TestClient, tool_server: tuple[ToolServer, str]) -> None:
    tool_server[0].delay = 5.0
    got = turn(service, "w3", text="How is the weather?")
    result = next(data for kind, data in got if kind == "tool_result")
    assert (result["call"]["status"], result["call"]["error_code"]) == ("timeout", "tool_timeout")
    text = "".join(data["text"] for kind, data in got if kind == "delta")
    assert text == "Let me do that. Sorry, I could not do that."
    assert got[-1][0] == "done"


def test_an_undeclared_topic_is_refused_and_said(service: TestClient) -> None:
    got = turn(service, "m1", text="Open the garage light.")
    result = next(data for kind, data in got if kind == "tool_result")
    assert (result["call"]["status"], result["call"]["error_code"]) == ("refused", "invalid_arguments")
    assert "home/garage/door/set" in result["call"]["result"]
    assert "Sorry" in "".join(data["text"] for kind, data in got if kind == "delta")


def test_leaving_during_a_tool_call_cancels_it(
    tools_file: Path, openai_server: str, sqlite_url: str, tool_server: tuple[ToolServer, str]
) -> None:
    server, _ = tool_server
    server.delay = 30.0
    cancelled = server.cancelled
    settings = conversation_settings(
        sqlite_url, responder="openai", openai_base_url=openai_server, tools_file=tools_file
    )
    with serve(create_app(settings)) as base, httpx.Client(base_url=base, timeout=10) as client:
        with client.stream("POST", "/v1/conversations/b1/turns", json={"text": "Weather, quickly."}) as response:
            lines = response.iter_lines()  # kept: a dropped iterator closes the connection at once
            for line in lines:
                if line == "event: tool_call":
                    break
            deadline = time.monotonic() + 10
            while not server.calls and time.monotonic() < deadline:
                time.sleep(0.02)
        # the client has gone (a barge-in): the call is cancelled and stored so
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            calls = client.get("/v1/conversations/b1").json()["messages"][-1]["tool_calls"]
            if calls and calls[0]["status"] != "running":
                break
            time.sleep(0.05)
        assert calls[0]["status"] == "cancelled"
        assert client.get("/v1/conversations/b1").json()["messages"][-1]["status"] == "interrupted"
    deadline = time.monotonic() + 5
    while server.cancelled == cancelled and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.cancelled == cancelled + 1  # the tool's own request was dropped, not left to run


def test_client_tools_end_the_turn_and_take_outputs(service: TestClient, openai_server: str) -> None:
    forecast = {"name": "forecast_sky", "description": "Tomorrow's sky.", "parameters": {}}
    got = turn(service, "c1", text="Use forecast_sky for tomorrow.", tools=[forecast])
    call = next(data["call"] for kind, data in got if kind == "tool_call")
    assert (call["kind"], call["status"], call["name"]) == ("client", "pending", "forecast_sky")
    assert "tool_result" not in [kind for kind, _ in got]
    assert got[-1][0] == "done"
    offered = httpx.get(openai_server.removesuffix("/v1") + "/requests").json()[-1]["body"]["tools"]
    assert {t["function"]["name"] for t in offered} == {"set_light", "weather", "get_time", "forecast_sky"}

    refused = service.post("/v1/conversations/c1/turns", json={"tool_outputs": [{"call_id": "nope", "output": "x"}]})
    assert (refused.status_code, refused.json()["error"]["code"]) == (422, "unknown_tool_call")
    got = turn(service, "c1", tool_outputs=[{"call_id": call["call_id"], "output": "clear skies"}])
    assert got[0][1]["user_message"] is None
    assert "".join(data["text"] for kind, data in got if kind == "delta") == "Done: clear skies."
    assert sent_messages(openai_server)[-1] == {
        "role": "tool",
        "tool_call_id": call["call_id"],
        "content": "clear skies",
    }
    again = service.post(
        "/v1/conversations/c1/turns", json={"tool_outputs": [{"call_id": call["call_id"], "output": "x"}]}
    )
    assert again.json()["error"]["code"] == "unknown_tool_call"  # answered already


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"text": "x", "tools": [{"name": "weather"}]}, "duplicate_tool"),
        ({"text": "x", "tools": [{"name": "a"}, {"name": "a"}]}, "duplicate_tool"),
        ({"text": "x", "tool_choice": "nothing_like_it"}, "unknown_tool"),
        ({"tools": [{"name": "a"}]}, "invalid_request"),
        ({"text": "x", "tools": [{"name": "bad name!"}]}, "invalid_request"),
    ],
)
def test_bad_tool_requests(service: TestClient, body: dict[str, Any], code: str) -> None:
    response = service.post("/v1/conversations/bad/turns", json=body)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == code


def test_tool_choice_none_offers_no_tools(service: TestClient, openai_server: str) -> None:
    got = turn(service, "n1", text="What is the weather?", tool_choice="none")
    assert "tool_call" not in [kind for kind, _ in got]
    assert "tools" not in httpx.get(openai_server.removesuffix("/v1") + "/requests").json()[-1]["body"]
