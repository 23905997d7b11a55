"""What reaches the responder, through the ``openai`` SDK: the session's and each response's
``instructions``, ``temperature`` and ``max_response_output_tokens`` arrive in the model server's
chat-completions request (the OpenAI-style test server, a process); barge-in by speech cancels a reply
still being written; deleting an item deletes its stored message."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from devkit.speech import kokoro_speech, words
from tests.gateway.conftest import SHORT
from tests.realtime.conftest import API_KEY
from tests.realtime.kit import client, of, stream, until, with_silence

pytestmark = [pytest.mark.engine, pytest.mark.slow]


def _text_item(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def _model_requests(openai_server: str) -> list[dict[str, Any]]:
    answer: list[dict[str, Any]] = httpx.get(openai_server.removesuffix("/v1") + "/requests", timeout=30).json()
    return [seen["body"] for seen in answer]


def _stored(gateway_url: str, session_id: str) -> list[dict[str, Any]]:
    conversation = "conv_" + session_id.removeprefix("sess_")
    with httpx.Client(base_url=gateway_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30) as http:
        messages: list[dict[str, Any]] = http.get(f"/api/conversations/{conversation}").json()["messages"]
    return messages


def test_session_and_response_options_reach_the_model(model_realtime_url: str, openai_server: str) -> None:
    """Session options hold for every response; a response's own override them for that response only;
    options out of the server's bounds are ``error`` events naming the parameter."""

    async def scenario() -> list[dict[str, Any]]:
        async with client(model_realtime_url, API_KEY).beta.realtime.connect(model="voicestack") as connection:
            events = await until(connection, "session.created")
            session = {
                "modalities": ["text"],
                "turn_detection": None,
                "instructions": "You are a terse lighthouse keeper.",
                "temperature": 0.6,
                "max_response_output_tokens": 120,
            }
            await connection.session.update(session=session)  # type: ignore[arg-type]
            await until(connection, "session.updated", into=events)
            await connection.conversation.item.create(item=_text_item("What is the weather like"))  # type: ignore[arg-type]
            await connection.response.create()
            await until(connection, "response.done", into=events)
            await connection.conversation.item.create(item=_text_item("And tomorrow"))  # type: ignore[arg-type]
            override = {"instructions": "Answer in one word.", "temperature": 1.1, "max_response_output_tokens": 16}
            await connection.response.create(response=override)  # type: ignore[arg-type]
            await until(connection, "response.done", into=events)
            await connection.session.update(session={"instructions": "x" * 4001}, event_id="too-long")  # type: ignore[arg-type]
            await until(connection, "error", into=events)
            await connection.response.create(response={"max_response_output_tokens": 5000}, event_id="too-many")  # type: ignore[arg-type]
            return await until(connection, "error", into=events)

    events = asyncio.run(scenario())
    done = of(events, "response.done")
    assert [d["response"]["status"] for d in done] == ["completed", "completed"]
    assert of(events, "response.text.done")[0]["text"] == "Model heard: What is the weather like. Goodbye."
    first, second = _model_requests(openai_server)[-2:]
    assert first["messages"][0] == {"role": "system", "content": "You are a terse lighthouse keeper."}
    assert (first["temperature"], first["max_tokens"]) == (0.6, 120)
    assert second["messages"][0] == {"role": "system", "content": "Answer in one word."}
    assert (second["temperature"], second["max_tokens"]) == (1.1, 16)
    assert second["messages"][-1] == {"role": "user", "content": "And tomorrow"}
    too_long, too_many = of(events, "error")
    assert too_long["error"]["code"] == "invalid_option"
    assert (too_long["error"]["param"], too_long["error"]["event_id"]) == ("session.instructions", "too-long")
    assert too_many["error"]["param"] == "response.max_response_output_tokens"
    assert too_many["error"]["event_id"] == "too-many"


def test_options_the_server_does_not_allow(realtime_url: str) -> None:
    """A policy without ``system_prompt``: ``instructions`` are refused (the update is not applied)."""

    async def scenario() -> list[dict[str, Any]]:
        async with client(realtime_url, API_KEY).beta.realtime.connect(model="voicestack") as connection:
            events = await until(connection, "session.created")
            update = {"instructions": "Be rude.", "turn_detection": None}
            await connection.session.update(session=update, event_id="rude")  # type: ignore[arg-type]
            await until(connection, "error", into=events)
            await connection.session.update(session={"temperature": 0.7})
            return await until(connection, "session.updated", into=events)

    events = asyncio.run(scenario())
    error = of(events, "error")[0]["error"]
    assert (error["code"], error["param"], error["event_id"]) == ("option_not_allowed", "session.instructions", "rude")
    session = of(events, "session.updated")[0]["session"]
    assert session["instructions"] == ""
    assert session["turn_detection"] is not None  # all or nothing
    assert session["temperature"] == 0.7


def test_barge_in_by_speech_cancels_the_reply(model_realtime_url: str) -> None:
    """A reply the model is still writing (it never ends on its own) when the user speaks: server VAD's
    ``speech_started`` cancels it (``turn_detected``), the client truncates what it played, the stored
    reply keeps only that; the user's spoken turn then gets its own reply."""
    speech = with_silence(kokoro_speech(SHORT), lead=0.5, tail=0.0).to_pcm16()
    silence = bytes(24_000 * 2 * 2)  # 2 s: ends the user's turn

    async def scenario() -> tuple[list[dict[str, Any]], str]:
        async with client(model_realtime_url, API_KEY).beta.realtime.connect(model="voicestack") as connection:
            events = await until(connection, "session.created")
            vad = {"type": "server_vad", "silence_duration_ms": 500}
            await connection.session.update(session={"turn_detection": vad})  # type: ignore[arg-type]
            await until(connection, "session.updated", into=events)
            await connection.conversation.item.create(item=_text_item("Please trickle on for a while."))  # type: ignore[arg-type]
            await connection.response.create()
            await until(connection, "response.audio.delta", into=events, timeout=120)
            speaking = asyncio.create_task(stream(connection, speech, 4800, 0.1))
            await until(connection, "input_audio_buffer.speech_started", into=events, timeout=120)
            await until(connection, "response.done", into=events)
            played = of(events, "response.audio.delta")
            item_id = of(events, "response.output_item.added")[0]["item"]["id"]
            await connection.conversation.item.truncate(item_id=item_id, content_index=0, audio_end_ms=500)
            await until(connection, "conversation.item.truncated", into=events)
            assert played
            await speaking
            await stream(connection, silence, 4800, 0.1)  # only now can the user's turn end
            await until(connection, "input_audio_buffer.committed", into=events, timeout=120)
            await until(connection, "response.done", into=events, timeout=180)
            return events, of(events, "session.created")[0]["session"]["id"]

    events, session_id = asyncio.run(scenario())
    kinds = [e["type"] for e in events]
    first, second = of(events, "response.done")
    assert first["response"]["status"] == "cancelled"
    assert first["response"]["status_details"] == {"type": "cancelled", "reason": "turn_detected"}
    assert kinds.index("input_audio_buffer.speech_started") < kinds.index("response.done")
    assert second["response"]["status"] == "completed"
    heard = second["response"]["output"][0]["content"][0]["transcript"]
    assert heard.startswith("Model heard: ")
    assert len([w for w in words(SHORT) if w not in words(heard)]) <= 1, heard
    stored = _stored(model_realtime_url, session_id)
    assert [m["role"] for m in stored] == ["user", "assistant", "user", "assistant"]
    interrupted = stored[1]
    assert interrupted["interrupted"]
    assert interrupted["status"] == "interrupted"
    assert interrupted["generated_text"].startswith("This is part 1 of an answer that never ends.")
    assert len(words(interrupted["text"])) < len(words(interrupted["generated_text"]))
    assert interrupted["text"] == interrupted["heard_text"]


def test_deleted_items_leave_the_stored_conversation(realtime_url: str) -> None:
    """``conversation.item.delete`` deletes the item's stored message; later responses no longer see it."""

    async def scenario() -> tuple[list[dict[str, Any]], str]:
        async with client(realtime_url, API_KEY).beta.realtime.connect(model="voicestack") as connection:
            events = await until(connection, "session.created")
            session = {"modalities": ["text"], "turn_detection": None}
            await connection.session.update(session=session)  # type: ignore[arg-type]
            await until(connection, "session.updated", into=events)
            for text in ("first question", "second question"):
                await connection.conversation.item.create(item=_text_item(text))  # type: ignore[arg-type]
                await connection.response.create()
                await until(connection, "response.done", into=events)
            users = [e["item"]["id"] for e in of(events, "conversation.item.created") if e["item"]["role"] == "user"]
            replies = [e["response"]["output"][0]["id"] for e in of(events, "response.done")]
            for item_id in (replies[0], users[1]):
                await connection.conversation.item.delete(item_id=item_id)
                await until(connection, "conversation.item.deleted", into=events)
            await connection.conversation.item.delete(item_id=replies[0], event_id="twice")
            await until(connection, "error", into=events)
            return events, of(events, "session.created")[0]["session"]["id"]

    events, session_id = asyncio.run(scenario())
    assert [e["item_id"] for e in of(events, "conversation.item.deleted")] == [
        of(events, "response.done")[0]["response"]["output"][0]["id"],
        [e["item"]["id"] for e in of(events, "conversation.item.created") if e["item"]["role"] == "user"][1],
    ]
    assert of(events, "error")[0]["error"]["event_id"] == "twice"
    stored = _stored(realtime_url, session_id)
    assert [(m["role"], m["text"]) for m in stored] == [
        ("user", "first question"),
        ("assistant", "You said: second question."),
    ]
    # the same through the gateway's REST face
    path = f"/api/conversations/conv_{session_id.removeprefix('sess_')}/messages/{stored[0]['id']}"
    with httpx.Client(base_url=realtime_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30) as http:
        assert http.delete(path).status_code == 204
        again = http.delete(path)
        assert (again.status_code, again.json()["error"]["code"]) == (404, "message_not_found")
    assert [m["role"] for m in _stored(realtime_url, session_id)] == ["assistant"]
