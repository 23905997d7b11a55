"""The local responder against bare llama.cpp, in one run: first token and tokens per second.

    uv run python bench/bench_llm.py [--runs 20] [--model smollm2-135m] [--json out.json]

Bare: llama-cpp-python in this process, the way its own documentation runs a chat model
(``Llama(model_path, n_ctx)`` with its default thread count, ``create_chat_completion(stream=True)``).
Service: the conversation service as its own process (``CONVERSATION_RESPONDER=local``, its defaults),
a turn over HTTP (``POST /v1/conversations/{id}/turns``, server-sent events) on a new conversation
each time, so both get the same prompt (the system prompt and one question). Calls alternate (bare,
service, bare, ...) over a set of short questions, so drift on the machine hits both alike. Reported
per side: seconds to the first token (the first ``delta`` event for the service; it includes HTTP,
the store's writes and the worker queue), tokens per second after it (for the service, deltas per
second: one delta is one token), and the service/bare ratios of first-token time at min and p50.
Speed is never asserted in tests; the numbers go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from benchkit import emit, machine, service, summary

from conversation.llm_models import prepare
from conversation.settings import ConversationSettings

QUESTIONS = [
    "What is the capital of France?",
    "What is two plus two?",
    "Who wrote Hamlet?",
    "What colour is the sky?",
    "How many days are in a week?",
]


def bare_turn(llm: Any, system: str, question: str, max_tokens: int, temperature: float) -> tuple[float, float, int]:
    """(first token s, tokens/s after it, tokens) of one streamed chat completion."""
    messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
    started = time.perf_counter()
    first = 0.0
    tokens = 0
    for chunk in llm.create_chat_completion(
        messages=messages, stream=True, max_tokens=max_tokens, temperature=temperature
    ):
        if chunk["choices"][0].get("delta", {}).get("content"):
            tokens += 1
            first = first or time.perf_counter() - started
    total = time.perf_counter() - started
    return first, (tokens - 1) / max(total - first, 1e-9), tokens


def service_turn(client: httpx.Client, url: str, question: str) -> tuple[float, float, int]:
    """The same through the conversation service: a new conversation, one turn, its ``delta`` events."""
    started = time.perf_counter()
    first = 0.0
    tokens = 0
    kind = ""
    path = f"{url}/v1/conversations/bench-{uuid.uuid4().hex[:12]}/turns?create=true"
    with client.stream("POST", path, json={"text": question}) as answer:
        answer.raise_for_status()
        for line in answer.iter_lines():
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:") and kind == "delta":
                tokens += 1
                first = first or time.perf_counter() - started
            elif line.startswith("data:") and kind == "error":
                raise RuntimeError(line)
    total = time.perf_counter() - started
    return first, (tokens - 1) / max(total - first, 1e-9), tokens


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from llama_cpp import Llama

    settings = ConversationSettings(_env_file=None, local_model=args.model)  # type: ignore[call-arg]
    path = prepare(args.model, settings.cache_dir)
    # The bare engine with llama-cpp-python's own defaults (its thread count: the cores / 2, at least 1).
    llm = Llama(model_path=str(path), n_ctx=settings.local_context, verbose=False)
    bare_turn(llm, settings.local_system_prompt, QUESTIONS[0], settings.local_max_tokens, settings.local_temperature)
    sides: dict[str, dict[str, list[float]]] = {
        side: {"first_token": [], "tokens_per_s": [], "tokens": []} for side in ("bare", "service")
    }
    env = {
        "CONVERSATION_RESPONDER": "local",
        "CONVERSATION_LOCAL_MODEL": args.model,
        "CONVERSATION_LOG_LEVEL": "WARNING",
    }
    with (
        service("conversation", "CONVERSATION_PORT", env | {"CONVERSATION_DATABASE_URL": _database()}) as url,
        httpx.Client(timeout=120, trust_env=False) as client,
    ):
        service_turn(client, url, QUESTIONS[0])  # warm-up
        for run in range(args.runs):
            question = QUESTIONS[run % len(QUESTIONS)]
            for side in ("bare", "service") if run % 2 == 0 else ("service", "bare"):
                if side == "bare":
                    measured = bare_turn(
                        llm,
                        settings.local_system_prompt,
                        question,
                        settings.local_max_tokens,
                        settings.local_temperature,
                    )
                else:
                    measured = service_turn(client, url, question)
                for name, value in zip(("first_token", "tokens_per_s", "tokens"), measured, strict=True):
                    sides[side][name].append(value)
    llm.close()
    results: dict[str, Any] = {
        "machine": machine(),
        "model": args.model,
        "bare_threads": llm.n_threads,
        "runs": args.runs,
        **{side: {name: summary(values) for name, values in parts.items()} for side, parts in sides.items()},
    }
    for stat in ("min", "p50"):
        results[f"first_token_service_over_bare_{stat}"] = round(
            results["service"]["first_token"][stat] / results["bare"]["first_token"][stat], 3
        )
    emit(results, args.json)


def _database() -> str:
    return f"sqlite:///{os.path.join(os.environ.get('TMPDIR', '/tmp'), f'bench-llm-{os.getpid()}.sqlite3')}"


if __name__ == "__main__":
    main()
