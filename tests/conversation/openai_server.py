"""A small OpenAI-compatible chat-completions server that streams, run as its own process in tests.

Its chunks are the ``openai`` SDK's own ``ChatCompletionChunk`` models, so it speaks the protocol
exactly. What it answers depends on the last user message:

* contains ``long``: ten sentences, a few words per chunk, a short pause between chunks;
* contains ``endless``: never stops;
* contains ``trickle``: never stops either, one short sentence every 0.3 s (a reply still being written
  when the user speaks again);
* contains ``garbage``: a chunk that is not JSON;
* contains ``fail``: HTTP 500 with an OpenAI error body;
* contains ``slow``: waits 5 s before the first chunk;
* otherwise: ``Model heard: <message>. Goodbye.``

Tool calls, when the request offers ``tools`` (its call id is fixed by the message, as a model seeded
alike would repeat it, so a retried request makes the same call):

* contains ``light``: ``Let me do that.``, then a call of the first offered tool with ``light`` in its
  name: ``{"topic": <its first topic>, "payload": "ON"}`` (``garage`` in the message: ``home/garage/door/set``);
* contains ``weather`` / ``time``: a call of ``weather`` (``{"city": "Paris"}``) / ``get_time``;
* names an offered tool: a call of it, without arguments;
* the last message is a tool's result: ``Sorry, I could not do that.`` when it starts with ``error``,
  else ``Done: <result>.``

``GET /requests`` returns the request bodies it got (the tests check what the responder sent).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from openai.types.chat import ChatCompletionChunk

LONG_REPLY = " ".join(
    f"This is sentence number {n} of a long answer, which keeps going for a while." for n in range(1, 11)
)


def chunk(completion_id: str, model: str, content: str | None, finish: str | None = None) -> str:
    """One SSE event carrying a ``ChatCompletionChunk``."""
    delta: dict[str, Any] = {"role": "assistant"} if content is None and finish is None else {}
    if content is not None:
        delta["content"] = content
    value = ChatCompletionChunk.model_validate(
        {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
    )
    return f"data: {value.model_dump_json(exclude_none=True)}\n\n"


def tool_chunk(completion_id: str, model: str, index: int, call_id: str | None, name: str | None, args: str) -> str:
    """One SSE event carrying a fragment of a tool call."""
    fragment: dict[str, Any] = {"index": index, "function": {"arguments": args}}
    if call_id is not None:
        fragment.update(id=call_id, type="function")
        fragment["function"]["name"] = name
    value = ChatCompletionChunk.model_validate(
        {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "delta": {"tool_calls": [fragment]}, "finish_reason": None}],
        }
    )
    return f"data: {value.model_dump_json(exclude_none=True)}\n\n"


def planned_call(body: dict[str, Any], last: str) -> tuple[str, dict[str, Any]] | None:
    """The tool this message calls, and its arguments (``None``: no call)."""
    tools = [t["function"] for t in body.get("tools") or [] if t.get("type") == "function"]
    if not tools or body.get("tool_choice") == "none":
        return None
    text = last.lower()
    names = [t["name"] for t in tools]
    if "light" in text:
        tool = next((t for t in tools if "light" in t["name"]), None)
        if tool is None:
            return None
        topic = tool["parameters"].get("properties", {}).get("topic", {}).get("enum", ["home/kitchen/light/set"])[0]
        if "garage" in text:
            topic = "home/garage/door/set"
        return tool["name"], {"topic": topic, "payload": "ON"}
    if "weather" in text and "weather" in names:
        return "weather", {"city": "Paris"}
    if "time" in text and "get_time" in names:
        return "get_time", {}
    return next(((name, {}) for name in names if name in text), None)


def create_app() -> FastAPI:
    """The server."""
    app = FastAPI()
    seen: list[dict[str, Any]] = []

    @app.get("/requests")
    async def requests() -> list[dict[str, Any]]:
        return seen

    @app.post("/v1/chat/completions")
    async def completions(request: Request) -> Any:
        body = await request.json()
        seen.append({"body": body, "authorization": request.headers.get("authorization")})
        last = body["messages"][-1]["content"] or ""
        model = body.get("model", "test")
        if body["messages"][-1]["role"] == "tool":
            answer = "Sorry, I could not do that." if last.startswith("error") else f"Done: {last}."
            return StreamingResponse(_say(model, [answer]), media_type="text/event-stream")
        if (call := planned_call(body, last)) is not None:
            return StreamingResponse(_call(model, last, *call), media_type="text/event-stream")
        if "fail" in last:
            return JSONResponse({"error": {"message": "the model is overloaded", "type": "server_error"}}, 500)
        if not body.get("stream"):
            text = f"Model heard: {last}. Goodbye."
            return {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            }

        async def events() -> AsyncIterator[str]:
            cid = "chatcmpl-test"
            yield chunk(cid, model, None)
            if "slow" in last:
                await asyncio.sleep(5)
            if "garbage" in last:
                yield "data: {this is not json\n\n"
                return
            if "trickle" in last:
                for number in itertools.count(1):
                    yield chunk(cid, model, f"This is part {number} of an answer that never ends. ")
                    await asyncio.sleep(0.3)
            if "endless" in last:
                while True:
                    yield chunk(cid, model, "more and more words, ")
                    await asyncio.sleep(0.01)
            if "long" in last:
                words = LONG_REPLY.split(" ")
                for start in range(0, len(words), 3):
                    yield chunk(cid, model, " ".join(words[start : start + 3]) + " ")
                    await asyncio.sleep(0.05)
            else:
                for piece in ("Model heard: ", last.rstrip("."), ". ", "Goodbye."):
                    yield chunk(cid, model, piece)
            yield chunk(cid, model, None, "stop")
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


async def _say(model: str, pieces: list[str]) -> AsyncIterator[str]:
    yield chunk("chatcmpl-test", model, None)
    for piece in pieces:
        yield chunk("chatcmpl-test", model, piece)
    yield chunk("chatcmpl-test", model, None, "stop")
    yield "data: [DONE]\n\n"


async def _call(model: str, last: str, name: str, arguments: dict[str, Any]) -> AsyncIterator[str]:
    """``Let me do that.`` and the call, its arguments in two fragments (as servers stream them)."""
    cid = "chatcmpl-test"
    call_id = "call_" + hashlib.sha256(last.encode()).hexdigest()[:16]
    yield chunk(cid, model, None)
    yield chunk(cid, model, "Let me do that. ")
    text = json.dumps(arguments)
    yield tool_chunk(cid, model, 0, call_id, name, text[: len(text) // 2])
    yield tool_chunk(cid, model, 0, None, None, text[len(text) // 2 :])
    yield chunk(cid, model, None, "tool_calls")
    yield "data: [DONE]\n\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(create_app(), host="127.0.0.1", port=args.port, log_level="warning")
