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

``GET /requests`` returns the request bodies it got (the tests check what the responder sent).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
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
        last = body["messages"][-1]["content"]
        model = body.get("model", "test")
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


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(create_app(), host="127.0.0.1", port=args.port, log_level="warning")
