"""The service's HTTP API through its lifespan: conversations, turns as SSE, owners, bad input."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conversation.app import create_app
from tests.conversation.conftest import conversation_settings

A = {"X-Voicestack-Owner": "key:aaaa"}
B = {"X-Voicestack-Owner": "key:bbbb"}


def events(body: str) -> list[tuple[str, dict[str, Any]]]:
    """``(event, data)`` pairs of an SSE body."""
    out = []
    for block in body.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((lines["event"], json.loads(lines["data"])))
    return out


def test_readiness_probes_leave_the_log_quiet(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A probe every few seconds must not log alembic's context lines (two INFO lines each)."""
    database = f"sqlite+aiosqlite:///{tmp_path / 'c.sqlite3'}"
    with TestClient(create_app(conversation_settings(database))) as client, caplog.at_level(logging.INFO):
        caplog.clear()
        for _ in range(3):
            assert client.get("/readyz").status_code == 200
    assert not [r for r in caplog.records if r.name.startswith("alembic")], caplog.text


def test_conversation_lifecycle_and_owners(database_url: str) -> None:
    with TestClient(create_app(conversation_settings(database_url))) as client:
        assert client.get("/readyz").json()["checks"]["schema_revision"] == "0003"
        created = client.post("/v1/conversations", json={"user_id": "u1", "title": "kitchen"}, headers=A)
        assert created.status_code == 201
        cid = created.json()["id"]
        turn = client.post(f"/v1/conversations/{cid}/turns", json={"text": "Turn on the lights"}, headers=A)
        assert turn.status_code == 200
        assert turn.headers["content-type"].startswith("text/event-stream")
        kinds = events(turn.text)
        assert kinds[0][0] == "turn"
        assert kinds[-1][0] == "done"
        reply = "".join(data["text"] for kind, data in kinds if kind == "delta")
        assert reply == "You said: Turn on the lights."
        assert kinds[-1][1]["message"]["text"] == reply
        detail = client.get(f"/v1/conversations/{cid}", headers=A).json()
        assert [(m["role"], m["text"]) for m in detail["messages"]] == [
            ("user", "Turn on the lights"),
            ("assistant", reply),
        ]
        assert detail["messages"][1]["responder"] == "echo"
        # another owner learns nothing: 404, not 403
        for call in (client.get, client.delete):
            answer = call(f"/v1/conversations/{cid}", headers=B)
            assert answer.status_code == 404
            assert answer.json()["error"]["code"] == "conversation_not_found"
        assert client.post(f"/v1/conversations/{cid}/turns", json={"text": "hi"}, headers=B).status_code == 404
        assert client.get("/v1/conversations", headers=B).json()["total"] == 0
        assert client.get("/v1/conversations", headers=A).json()["conversations"][0]["id"] == cid
        assert client.delete(f"/v1/conversations/{cid}", headers=A).status_code == 204
        assert client.get(f"/v1/conversations/{cid}", headers=A).status_code == 404
        assert "conversation_turns_total" in client.get("/metrics").text


def test_continuity_and_create_on_first_use(sqlite_url: str) -> None:
    with TestClient(create_app(conversation_settings(sqlite_url))) as client:
        missing = client.post("/v1/conversations/nope/turns", json={"text": "hello", "create": False})
        assert missing.status_code == 404
        for text in ("first question", "second question"):
            assert client.post("/v1/conversations/kept-1/turns", json={"text": text}).status_code == 200
        messages = client.get("/v1/conversations/kept-1").json()["messages"]
        assert [m["text"] for m in messages if m["role"] == "user"] == ["first question", "second question"]
        assert client.post("/v1/conversations", json={"id": "kept-1"}).status_code == 409


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"text": "x", "responder": {"name": "openai"}}, 422, "responder_not_allowed"),
        ({"text": "x", "responder": {"options": {"model": "gpt-5"}}}, 422, "option_not_allowed"),
        ({"text": "x", "responder": {"options": {"temperature": 9}}}, 422, "invalid_option"),
        ({"text": "x", "responder": {"options": {"max_tokens": "many"}}}, 422, "invalid_option"),
        ({"text": ""}, 422, "invalid_request"),
        ({"text": "y" * 20_001}, 422, "text_too_long"),
        ({"words": "x"}, 422, "invalid_request"),
    ],
)
def test_bad_turns(sqlite_url: str, body: dict[str, Any], status: int, code: str) -> None:
    with TestClient(create_app(conversation_settings(sqlite_url, max_text_chars=20_000))) as client:
        answer = client.post("/v1/conversations/c/turns", json=body)
        assert (answer.status_code, answer.json()["error"]["code"]) == (status, code)


def test_bad_ids_and_owner(sqlite_url: str) -> None:
    with TestClient(create_app(conversation_settings(sqlite_url))) as client:
        assert client.get("/v1/conversations/bad%20id").status_code == 422
        assert client.post("/v1/conversations", json={"id": "a/b"}).status_code == 422
        answer = client.get("/v1/conversations", headers={"X-Voicestack-Owner": "no spaces"})
        assert answer.json()["error"]["code"] == "invalid_owner"


def test_interrupt_endpoint(sqlite_url: str) -> None:
    with TestClient(create_app(conversation_settings(sqlite_url))) as client:
        turn = events(client.post("/v1/conversations/c/turns", json={"text": "one two three four"}).text)
        message_id = turn[0][1]["assistant_message_id"]
        answer = client.post(f"/v1/conversations/c/messages/{message_id}/interrupt", json={"heard_text": "You said"})
        assert answer.status_code == 200
        assert answer.json()["interrupted"]
        assert answer.json()["text"] == "You said"
        assert answer.json()["generated_text"] == "You said: one two three four."
        user_id = turn[0][1]["user_message"]["id"]
        wrong = client.post(f"/v1/conversations/c/messages/{user_id}/interrupt", json={"heard_text": ""})
        assert wrong.status_code == 404


def test_deliveries_of_seed000_reply_audio(database_url: str) -> None:
    """Pieces stored by one writer are taken in order, deleted as taken; done → gone; a new delivery of the
    device supersedes the old writer (409); owners and sessions are apart; a failed reply says why."""
    with TestClient(create_app(conversation_settings(database_url))) as client:

        def piece(turn: str, index: int, text: str) -> dict[str, Any]:
            audio = base64.b64encode(f"RIFF{index}".encode()).decode()
            body = {"turn": turn, "index": index, "text": text, "format": "wav", "sample_rate": 24000}
            return body | {"audio_base64": audio}

        def take(headers: dict[str, str], session: str = "car", wait: float = 0) -> dict[str, Any]:
            answer = client.post(f"/v1/deliveries/{session}/take", params={"wait": wait}, headers=headers)
            assert answer.status_code == 200, answer.text
            return dict(answer.json())

        assert take(A)["state"] == "none"
        turn = client.put("/v1/deliveries/car", json={"ttl": 60, "conversation_id": "device-car"}, headers=A)
        assert turn.status_code == 200, turn.text
        first = turn.json()["turn"]
        assert take(A, wait=0.3)["state"] == "pending"
        for index, text in enumerate(["One.", "Two."]):
            stored = client.post("/v1/deliveries/car/pieces", json=piece(first, index, text), headers=A)
            assert stored.status_code == 204
        assert take(B)["state"] == "none"  # another owner's device
        assert take(A, session="bus")["state"] == "none"
        got = take(A)
        assert (got["state"], got["index"], got["text"]) == ("piece", 0, "One.")
        assert base64.b64decode(got["audio_base64"]) == b"RIFF0"
        # a new upload of the device: the old writer is told to stop, its pieces are gone
        second = client.put("/v1/deliveries/car", json={"ttl": 60}, headers=A).json()["turn"]
        late = client.post("/v1/deliveries/car/pieces", json=piece(first, 2, "Three."), headers=A)
        assert late.status_code == 409
        assert late.json()["error"]["code"] == "delivery_superseded"
        assert client.post("/v1/deliveries/car/done", json={"turn": first}, headers=A).status_code == 409
        assert client.post("/v1/deliveries/car/pieces", json=piece(second, 0, "Again."), headers=A).status_code == 204
        assert client.post("/v1/deliveries/car/done", json={"turn": second}, headers=A).status_code == 204
        assert take(A)["text"] == "Again."
        assert take(A)["state"] == "done"
        assert take(A)["state"] == "none"  # delivered: gone
        # a reply that failed before any audio
        third = client.put("/v1/deliveries/car", json={}, headers=A).json()["turn"]
        failed = {"turn": third, "error": {"code": "responder_timeout", "message": "too slow"}}
        assert client.post("/v1/deliveries/car/done", json=failed, headers=A).status_code == 204
        got = take(A)
        assert (got["state"], got["error"]) == ("failed", {"code": "responder_timeout", "message": "too slow"})
        assert take(A)["state"] == "none"
        bad = client.post("/v1/deliveries/car/pieces", json=piece(third, 0, "x") | {"audio_base64": "%%"}, headers=A)
        assert bad.status_code == 422
        assert bad.json()["error"]["code"] == "invalid_base64"


def test_delete_message(database_url: str) -> None:
    """One message goes; later turns no longer see it; another owner's and unknown ids are 404."""
    with TestClient(create_app(conversation_settings(database_url))) as client:
        first = events(client.post("/v1/conversations/d/turns", json={"text": "first"}, headers=A).text)
        events(client.post("/v1/conversations/d/turns", json={"text": "second"}, headers=A).text)
        user_id = first[0][1]["user_message"]["id"]
        assert client.delete(f"/v1/conversations/d/messages/{user_id}", headers=B).json()["error"]["code"] == (
            "conversation_not_found"
        )
        assert client.delete(f"/v1/conversations/d/messages/{user_id}", headers=A).status_code == 204
        again = client.delete(f"/v1/conversations/d/messages/{user_id}", headers=A)
        assert (again.status_code, again.json()["error"]["code"]) == (404, "message_not_found")
        other = events(client.post("/v1/conversations/e/turns", json={"text": "elsewhere"}, headers=A).text)
        foreign = other[0][1]["user_message"]["id"]
        assert client.delete(f"/v1/conversations/d/messages/{foreign}", headers=A).status_code == 404
        assert client.delete("/v1/conversations/d/messages/bad%20id", headers=A).status_code == 422
        texts = [m["text"] for m in client.get("/v1/conversations/d", headers=A).json()["messages"]]
        assert texts == ["You said: first.", "second", "You said: second."]
        # the next turn is numbered after the last message, gaps or not
        events(client.post("/v1/conversations/d/turns", json={"text": "third"}, headers=A).text)
        texts = [m["text"] for m in client.get("/v1/conversations/d", headers=A).json()["messages"]]
        assert texts[-2:] == ["third", "You said: third."]


def test_responders_lists_option_bounds(sqlite_url: str) -> None:
    settings = conversation_settings(sqlite_url, allowed_options=["temperature", "system_prompt"])
    with TestClient(create_app(settings)) as client:
        answer = client.get("/v1/responders").json()
        assert answer["options"] == ["temperature", "system_prompt"]
        assert answer["limits"] == {
            "temperature": {"type": "number", "min": 0, "max": 2},
            "system_prompt": {"type": "string", "min": 0, "max": 4000},
        }
        long = client.post(
            "/v1/conversations/c/turns", json={"text": "x", "responder": {"options": {"system_prompt": "y" * 4001}}}
        )
        assert (long.status_code, long.json()["error"]["code"]) == (422, "invalid_option")
        assert long.json()["error"]["details"] == {"option": "system_prompt", "min": 0, "max": 4000}
