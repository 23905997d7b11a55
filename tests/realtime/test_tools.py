"""Function calling through the ``openai`` SDK: the session's tools reach the model (the conversation
service's ``openai`` responder against the OpenAI-style test server, a process), its call comes back as a
``function_call`` item, the client's ``function_call_output`` lets it answer; bad tools, choices and call
ids are ``error`` events and the session goes on."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.realtime.conftest import API_KEY, _conversation_service, _gateway
from tests.realtime.kit import client, of, until

pytestmark = [pytest.mark.engine, pytest.mark.slow]

DOORBELL = {
    "type": "function",
    "name": "ring_doorbell",
    "description": "Ring the front door's bell.",
    "parameters": {"type": "object", "properties": {"times": {"type": "integer"}}},
}
VOLUME = {
    "type": "function",
    "name": "set_volume",
    "description": "Set the speaker's volume.",
    "parameters": {"type": "object", "properties": {"level": {"type": "number"}}, "required": ["level"]},
}
ASK = "Please ring_doorbell now."
OUTPUT = "the doorbell rang twice"
FIRST_REPLY = [
    "response.created",
    "rate_limits.updated",
    "response.output_item.added",
    "conversation.item.created",
    "response.content_part.added",
    "response.audio_transcript.delta",
    "response.audio.delta",
    "response.audio.done",
    "response.audio_transcript.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.output_item.added",
    "conversation.item.created",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "response.output_item.done",
    "response.done",
]


@pytest.fixture(scope="module")
def server_tools_url(
    tmp_path_factory: pytest.TempPathFactory,
    openai_server: str,
    stt_url: str,
    tts_url: str,
) -> Iterator[str]:
    """The gateway in front of a conversation service with a tool of its own (``get_time``)."""
    workdir = tmp_path_factory.mktemp("realtime-tools")
    (workdir / "tools.yaml").write_text("tools:\n  - type: get_time\n")
    with (
        _conversation_service(
            workdir / "conversations.sqlite3",
            responder="openai",
            openai_base_url=openai_server,
            tools_file=workdir / "tools.yaml",
        ) as conversations,
        _gateway(stt_url, tts_url, conversations) as url,
    ):
        yield url


def _text_item(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def _model_requests(openai_server: str) -> list[dict[str, Any]]:
    answer: list[dict[str, Any]] = httpx.get(openai_server.removesuffix("/v1") + "/requests", timeout=30).json()
    return [seen["body"] for seen in answer]


def _offered(tool: dict[str, Any]) -> dict[str, Any]:
    """A Realtime tool as a chat-completions request offers it."""
    return {"type": "function", "function": {k: tool[k] for k in ("name", "description", "parameters")}}


async def _respond(connection: Any, events: list[dict[str, Any]], **response: Any) -> list[dict[str, Any]]:
    """``response.create`` and its events up to ``response.done``."""
    start = len(events)
    await connection.response.create(**({"response": response} if response else {}))
    await until(connection, "response.done", into=events, timeout=120)
    return events[start:]


def test_the_model_calls_a_tool_and_answers_with_its_output(model_realtime_url: str, openai_server: str) -> None:
    """A spoken ``Let me do that.``, then the call as a ``function_call`` item; its output, and the model's
    spoken answer; ``tool_choice`` per response (a named one, ``none``), the session's otherwise."""

    async def scenario() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with client(model_realtime_url, API_KEY).beta.realtime.connect(model="voicestack") as connection:
            events = await until(connection, "session.created")
            session = {"turn_detection": None, "tools": [DOORBELL, VOLUME], "tool_choice": "auto"}
            await connection.session.update(session=session)  # type: ignore[arg-type]
            seen["updated"] = (await until(connection, "session.updated", into=events))[-1]["session"]
            before = len(_model_requests(openai_server))
            await connection.conversation.item.create(item=_text_item(ASK))  # type: ignore[arg-type]
            await until(connection, "conversation.item.created", into=events)
            named = {"type": "function", "name": "ring_doorbell"}
            seen["call"] = await _respond(connection, events, tool_choice=named)
            done = of(seen["call"], "response.done")[0]["response"]
            call_id = done["output"][-1]["call_id"] if done["output"] else "missing"
            output = {"type": "function_call_output", "call_id": call_id, "output": OUTPUT}
            await connection.conversation.item.create(item=output)  # type: ignore[arg-type]
            seen["output"] = (await until(connection, "conversation.item.created", into=events))[-1]
            seen["answer"] = await _respond(connection, events)
            await connection.conversation.item.create(item=_text_item("Please ring_doorbell again."))  # type: ignore[arg-type]
            await until(connection, "conversation.item.created", into=events)
            seen["none"] = await _respond(connection, events, tool_choice="none", modalities=["text"])
            seen["requests"] = _model_requests(openai_server)[before:]
        return seen

    seen = asyncio.run(scenario())
    updated = seen["updated"]
    assert (updated["tools"], updated["tool_choice"]) == ([DOORBELL, VOLUME], "auto")

    # the call: the words before it a message with audio, then the function_call item
    events = seen["call"]
    kinds = [e["type"] for e in events]
    remaining = iter(kinds)
    assert all(kind in remaining for kind in FIRST_REPLY), kinds  # in this order
    call_added = [i for i, kind in enumerate(kinds) if kind == "response.output_item.added"][1]
    assert max(i for i, kind in enumerate(kinds) if kind.startswith("response.audio")) < call_added, kinds
    done = of(events, "response.done")[0]["response"]
    assert done["status"] == "completed"
    message, call = done["output"]
    assert (message["type"], message["content"][0]["transcript"]) == ("message", "Let me do that. ")
    assert of(events, "response.audio.delta")
    call_id = "call_" + hashlib.sha256(ASK.encode()).hexdigest()[:16]
    assert call == {
        "id": call["id"],
        "object": "realtime.item",
        "type": "function_call",
        "status": "completed",
        "name": "ring_doorbell",
        "call_id": call_id,
        "arguments": "{}",
    }
    added = of(events, "response.output_item.added")[1]
    assert (added["output_index"], added["item"]["status"], added["item"]["arguments"]) == (1, "in_progress", "")
    created = of(events, "conversation.item.created")[1]
    assert (created["item"]["id"], created["previous_item_id"]) == (call["id"], message["id"])
    deltas = of(events, "response.function_call_arguments.delta")
    assert "".join(d["delta"] for d in deltas) == "{}"
    arguments = of(events, "response.function_call_arguments.done")[0]
    assert (arguments["item_id"], arguments["call_id"], arguments["output_index"]) == (call["id"], call_id, 1)
    assert (arguments["response_id"], arguments["arguments"]) == (done["id"], "{}")
    assert of(events, "response.output_item.done")[1]["item"] == call

    # the output, and the answer the model makes of it
    stored = seen["output"]
    assert stored["item"]["type"] == "function_call_output"
    assert (stored["item"]["call_id"], stored["item"]["output"]) == (call_id, OUTPUT)
    assert stored["previous_item_id"] == call["id"]
    answer = of(seen["answer"], "response.done")[0]["response"]
    assert answer["status"] == "completed"
    assert [item["type"] for item in answer["output"]] == ["message"]
    assert answer["output"][0]["content"][0]["transcript"] == f"Done: {OUTPUT}."
    assert of(seen["answer"], "response.audio.delta")

    # tool_choice "none" for one response: no tools offered, no call
    plain = of(seen["none"], "response.done")[0]["response"]
    assert [item["type"] for item in plain["output"]] == ["message"]
    assert plain["output"][0]["content"][0]["text"] == "Model heard: Please ring_doorbell again. Goodbye."

    # what the model server was asked
    asked, continued, refused = seen["requests"]
    assert asked["tools"] == [_offered(DOORBELL), _offered(VOLUME)]
    assert asked["tool_choice"] == {"type": "function", "function": {"name": "ring_doorbell"}}
    assert asked["messages"][-1] == {"role": "user", "content": ASK}
    assert (continued["tools"], continued["tool_choice"]) == ([_offered(DOORBELL), _offered(VOLUME)], "auto")
    assert continued["messages"][-1]["role"] == "tool"
    assert (continued["messages"][-1]["tool_call_id"], continued["messages"][-1]["content"]) == (call_id, OUTPUT)
    assert "tools" not in refused
    assert "tool_choice" not in refused


def test_bad_tools_choices_and_call_ids_are_errors(model_realtime_url: str) -> None:
    """Invalid tools and choices are ``error`` events naming the parameter (the session keeps its tools);
    an output for a call not in the conversation is refused at once; an output the conversation service
    does not wait for (the call was answered) fails its response with the service's ``unknown_tool_call``;
    the session goes on."""

    async def scenario() -> list[dict[str, Any]]:
        async with client(model_realtime_url, API_KEY).beta.realtime.connect(model="voicestack") as connection:
            events = await until(connection, "session.created")
            session = {"modalities": ["text"], "turn_detection": None, "tools": [DOORBELL]}
            await connection.session.update(session=session)  # type: ignore[arg-type]
            await until(connection, "session.updated", into=events)
            bad: list[tuple[str, dict[str, Any]]] = [
                ("bad-name", {"tools": [{**DOORBELL, "name": "ring the bell"}]}),
                ("bad-type", {"tools": [{**DOORBELL, "type": "code_interpreter"}]}),
                ("twice", {"tools": [DOORBELL, DOORBELL]}),
                ("bad-choice", {"tool_choice": "sometimes maybe"}),
                ("not-offered", {"tool_choice": {"type": "function", "name": "set_volume"}}),
            ]
            for event_id, update in bad:
                await connection.session.update(session=update, event_id=event_id)  # type: ignore[arg-type]
                await until(connection, "error", into=events)
            await connection.response.create(response={"tool_choice": "set_volume"}, event_id="response-choice")  # type: ignore[arg-type]
            await until(connection, "error", into=events)
            await connection.session.update(session={"tool_choice": "required"})
            await until(connection, "session.updated", into=events)
            await connection.session.update(session={"tool_choice": "auto"})
            await until(connection, "session.updated", into=events)
            nobody = {"type": "function_call_output", "call_id": "call_nobody_made", "output": "42"}
            await connection.conversation.item.create(item=nobody, event_id="unknown-call")  # type: ignore[arg-type]
            await until(connection, "error", into=events)
            await connection.conversation.item.create(item=_text_item("Could you ring_doorbell"))  # type: ignore[arg-type]
            await _respond(connection, events)
            call_id = of(events, "response.done")[-1]["response"]["output"][-1].get("call_id")
            for attempt in ("first", "again"):
                output = {"type": "function_call_output", "call_id": call_id, "output": f"rang ({attempt})"}
                await connection.conversation.item.create(item=output)  # type: ignore[arg-type]
                await until(connection, "conversation.item.created", into=events)
                await connection.response.create(event_id=attempt)
                await until(connection, "response.done", into=events)
            await connection.conversation.item.create(item=_text_item("Are you still there"))  # type: ignore[arg-type]
            await _respond(connection, events, tools=[])
            return events

    events = asyncio.run(scenario())
    errors = [(e["error"]["event_id"], e["error"]["code"], e["error"]["param"]) for e in of(events, "error")]
    assert errors == [
        ("bad-name", "invalid_value", "session.tools.0.name"),
        ("bad-type", "invalid_value", "session.tools.0.type"),
        ("twice", "invalid_value", "session.tools.1.name"),
        ("bad-choice", "invalid_value", "session.tool_choice"),
        ("not-offered", "invalid_value", "session.tool_choice"),
        ("response-choice", "invalid_value", "response.tool_choice"),
        ("unknown-call", "invalid_tool_call_id", "item.call_id"),
        ("again", "unknown_tool_call", None),
    ]
    assert all(e["error"]["type"] == "invalid_request_error" for e in of(events, "error"))
    required, auto = (e["session"] for e in of(events, "session.updated")[1:])
    assert (required["tools"], required["tool_choice"]) == ([DOORBELL], "required")
    assert auto["tool_choice"] == "auto"
    items = [e["item"] for e in of(events, "conversation.item.created")]
    assert "call_nobody_made" not in [item.get("call_id") for item in items]
    done = [e["response"] for e in of(events, "response.done")]
    assert [d["status"] for d in done] == ["completed", "completed", "failed", "completed"]
    assert done[0]["output"][-1]["type"] == "function_call"
    assert done[1]["output"][0]["content"][0]["text"] == "Done: rang (first)."
    assert done[2]["status_details"]["error"]["code"] == "unknown_tool_call"
    assert done[2]["output"] == []
    assert done[3]["output"][0]["content"][0]["text"] == "Model heard: Are you still there. Goodbye."
    assert json.loads(done[0]["output"][-1]["arguments"]) == {}


def test_the_services_own_tools_stay_out_of_sight(server_tools_url: str, openai_server: str) -> None:
    """A tool of the conversation service's (``get_time``) runs there: the response is one message, the
    words before the call and the answer made of its result, with no ``function_call`` item."""

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with client(server_tools_url, API_KEY).beta.realtime.connect(model="voicestack") as connection:
            events = await until(connection, "session.created")
            session = {"modalities": ["text"], "turn_detection": None, "tools": [DOORBELL]}
            await connection.session.update(session=session)  # type: ignore[arg-type]
            await until(connection, "session.updated", into=events)
            before = len(_model_requests(openai_server))
            await connection.conversation.item.create(item=_text_item("What time is it"))  # type: ignore[arg-type]
            await _respond(connection, events)
            return events, _model_requests(openai_server)[before:]

    events, requests = asyncio.run(scenario())
    done = of(events, "response.done")[0]["response"]
    assert done["status"] == "completed"
    assert [item["type"] for item in done["output"]] == ["message"]
    assert done["output"][0]["content"][0]["text"].startswith("Let me do that. Done: ")
    assert not [e for e in events if e["type"].startswith("response.function_call_arguments")]
    asked, answered = requests
    assert sorted(tool["function"]["name"] for tool in asked["tools"]) == ["get_time", "ring_doorbell"]
    assert answered["messages"][-1]["role"] == "tool"
