"""``local``: a GGUF chat model on llama.cpp (llama-cpp-python), in this process, off the event loop.

The model runs on the pool's own threads (``voicestack_common.workers``, as the brokers' engines
do): one llama.cpp context per worker, a bounded queue (``saturated`` beyond it), and each reply
streamed token by token into the sentence pipeline. The chat template is the model's own (GGUF
metadata). The prompt keeps the system message and the new message and drops the oldest turns
until it fits the context with room for the reply. A reply whose reader goes away (the user barged
in, the gateway cancelled the turn) stops before its next token.

Tools reach the model through its chat template when the template takes them (Qwen2.5's does);
for a template that does not (SmolLM2's), ``hermes_messages`` writes them into the system message
and the calls and results into the chat in the Hermes form Qwen is trained on. A call comes back as
text, ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``, taken out of the spoken text.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from conversation.llm_models import LlmModelError, prepare
from conversation.responders.base import ReplyRequest, ResponderError, ResponderUnavailable, ToolCallRequest
from conversation.responders.hermes import ToolCallText, hermes_messages
from conversation.settings import ConversationSettings
from voicestack_common.workers import Done, WorkerPool, emitted

logger = logging.getLogger(__name__)

# Tokens a chat template adds around each message (role markers, separators), counted on top of its text.
_MESSAGE_OVERHEAD = 8
# The least room left for a reply before a prompt counts as too long for the context.
_MIN_REPLY_TOKENS = 16


class ContextExceeded(ResponderError):
    """The new message alone does not fit the model's context."""

    default_code: ClassVar[str] = "responder_context_exceeded"


@dataclass(frozen=True, slots=True)
class Generation:
    """What one reply cost."""

    prompt_tokens: int
    tokens: int
    dropped_messages: int
    seconds: float
    cancelled: bool


class LlamaEngine:
    """One llama.cpp context, loaded and used on its pool thread only."""

    def __init__(self, path: str, *, context: int, threads: int, state_cache_bytes: int = 0) -> None:
        self.path = path
        self.context = context
        self.threads = threads
        self.state_cache_bytes = state_cache_bytes
        self._llm: Any = None
        self.template_takes_tools = False

    def load(self) -> None:
        """Map the model and make its context (the chat template comes from the GGUF's metadata)."""
        from llama_cpp import Llama
        from llama_cpp.llama_cache import LlamaRAMCache

        self._llm = Llama(
            model_path=self.path,
            n_ctx=self.context,
            n_threads=self.threads,
            n_threads_batch=self.threads,
            verbose=False,
        )
        # A context reuses the prompt it evaluated last when the next one starts with it (the same
        # conversation's next turn); the state cache keeps other conversations' states too, so
        # conversations taking turns on one context do not evaluate their whole history again.
        if self.state_cache_bytes:
            self._llm.set_cache(LlamaRAMCache(capacity_bytes=self.state_cache_bytes))
        self.template_takes_tools = "tools" in (self._llm.metadata.get("tokenizer.chat_template") or "")

    def close(self) -> None:
        """Free the context and the model."""
        if self._llm is not None:
            self._llm.close()
            self._llm = None

    def tokens(self, text: str) -> int:
        """How many tokens ``text`` takes."""
        return len(self._llm.tokenize(text.encode(), add_bos=False, special=True))

    def fit(
        self, messages: list[dict[str, Any]], max_tokens: int, tools: list[dict[str, Any]] | None = None
    ) -> tuple[list[dict[str, Any]], int, int, int]:
        """``messages`` without their oldest turns until the prompt (and the tools' descriptions) leaves
        ``max_tokens`` for the reply (or at least ``_MIN_REPLY_TOKENS``); returns them, the reply's token
        budget, how many were dropped and the prompt's tokens."""
        sizes = [self.tokens(_message_text(message)) + _MESSAGE_OVERHEAD for message in messages]
        if tools and messages:
            sizes[0] += self.tokens(json.dumps(tools))  # templates write them into the first message
        system = 1 if messages and messages[0]["role"] == "system" else 0
        kept = list(range(len(messages)))
        dropped = 0
        while sum(sizes[i] for i in kept) + max_tokens > self.context and len(kept) > system + 1:
            kept.pop(system)  # the oldest turn after the system message
            dropped += 1
        prompt = sum(sizes[i] for i in kept)
        room = self.context - prompt
        if room < _MIN_REPLY_TOKENS:
            raise ContextExceeded(
                f"the message takes {prompt} tokens; the local model's context holds {self.context}",
                details={"context_tokens": self.context},
            )
        return [messages[i] for i in kept], min(max_tokens, room), dropped, prompt

    def generate(
        self,
        messages: list[dict[str, Any]],
        *,
        temperature: float,
        max_tokens: int,
        emit: Callable[[str], None],
        cancel: threading.Event,
        tools: list[dict[str, Any]] | None = None,
    ) -> Generation:
        """Stream the reply's text through ``emit`` until it ends, ``max_tokens`` or ``cancel``."""
        started = time.perf_counter()
        if tools and not self.template_takes_tools:
            messages, tools = hermes_messages(messages, tools), None
        messages, budget, dropped, prompt = self.fit(messages, max_tokens, tools)
        chunks = self._llm.create_chat_completion(
            messages=messages, stream=True, temperature=temperature, max_tokens=budget, tools=tools or None
        )
        tokens = 0
        try:
            for chunk in chunks:  # each step of the stream samples one token
                if cancel.is_set():
                    break
                text = chunk["choices"][0].get("delta", {}).get("content")
                if text:
                    tokens += 1
                    emit(text)
        finally:
            chunks.close()
        return Generation(prompt, tokens, dropped, time.perf_counter() - started, cancel.is_set())


def _message_text(message: dict[str, Any]) -> str:
    """What a chat message says, its tool calls included (for counting its tokens)."""
    text = message.get("content") or ""
    if message.get("tool_calls"):
        text += json.dumps(message["tool_calls"])
    return text


class LocalMetrics:
    """The local model's queue, workers and output, as the brokers report their engines."""

    def __init__(self, registry: CollectorRegistry, pool: Callable[[], WorkerPool[LlamaEngine] | None]) -> None:
        ns = "conversation_llm"
        Gauge("queue_depth", "Replies waiting for a free model context.", namespace=ns, registry=registry).set_function(
            lambda: p.waiting if (p := pool()) else 0
        )
        Gauge("workers_busy", "Model contexts generating now.", namespace=ns, registry=registry).set_function(
            lambda: p.busy if (p := pool()) else 0
        )
        self.tokens = Counter("generated_tokens", "Tokens the local model generated.", namespace=ns, registry=registry)
        self.seconds = Histogram(
            "generation_seconds",
            "Seconds a local reply took on its model context.",
            namespace=ns,
            registry=registry,
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.dropped = Counter(
            "dropped_messages", "Old messages left out to fit the context.", namespace=ns, registry=registry
        )
        self.replies = Counter(
            "replies",
            "Replies generated, by outcome (complete, cancelled).",
            ["outcome"],
            namespace=ns,
            registry=registry,
        )


class LocalResponder:
    """Answers with the local GGUF model (``CONVERSATION_LOCAL_MODEL``)."""

    name = "local"

    def __init__(self, settings: ConversationSettings, registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.pool: WorkerPool[LlamaEngine] | None = None
        self.metrics = LocalMetrics(registry or CollectorRegistry(), lambda: self.pool)
        self.model_path = ""

    async def start(self) -> None:
        """Prepare the model file and load one context per worker, off the event loop."""
        import anyio

        settings = self.settings
        try:
            self.model_path = str(await anyio.to_thread.run_sync(prepare, settings.local_model, settings.cache_dir))
        except LlmModelError as exc:
            raise RuntimeError(f"the local responder has no model: {exc}") from None
        # Half the cores by default: the STT and TTS brokers of the same machine keep the rest (a reply's
        # first piece is synthesized while the model still writes; docs/benchmarks.md).
        threads = settings.local_threads or max(1, (os.cpu_count() or 1) // (2 * settings.local_workers))
        pool = WorkerPool(
            "local model",
            lambda: LlamaEngine(
                self.model_path,
                context=settings.local_context,
                threads=threads,
                state_cache_bytes=settings.local_state_cache_mb * 2**20,
            ),
            size=settings.local_workers,
            max_queue=settings.local_max_queue,
            retry_after=settings.local_retry_after,
        )
        started = time.perf_counter()
        await anyio.to_thread.run_sync(pool.start)
        self.pool = pool
        logger.info(
            "local model loaded",
            extra={
                "model": settings.local_model,
                "path": self.model_path,
                "workers": pool.size,
                "threads": threads,
                "context": settings.local_context,
                "seconds": round(time.perf_counter() - started, 2),
            },
        )

    def messages(self, request: ReplyRequest) -> list[dict[str, Any]]:
        """The chat for ``request``: system prompt, earlier turns, the new message, this reply's tool calls."""
        return request.chat(request.options.get("system_prompt", self.settings.local_system_prompt))

    async def reply(self, request: ReplyRequest) -> AsyncIterator[str | ToolCallRequest]:
        """The model's reply, token by token, then its tool calls; closing the stream stops the model
        before its next token."""
        pool = self.pool
        if pool is None:
            raise ResponderUnavailable("the local model is not loaded")
        settings, options = self.settings, request.options
        messages = self.messages(request)
        temperature = float(options.get("temperature", settings.local_temperature))
        max_tokens = int(options.get("max_tokens", settings.local_max_tokens))
        tools = request.tools if request.tool_choice != "none" else []

        def run(engine: LlamaEngine, cancel: threading.Event, emit: Callable[[str], None]) -> Generation:
            generation = engine.generate(
                messages, temperature=temperature, max_tokens=max_tokens, emit=emit, cancel=cancel, tools=tools
            )
            self._observe(generation)  # here, on the worker: a cancelled reply's caller is gone
            return generation

        async def start(emit: Callable[[str], None]) -> Generation:
            return await pool.submit(lambda engine, cancel: run(engine, cancel, emit), timeout=settings.reply_timeout)

        items: AsyncGenerator[str | Done[Generation], None] = emitted(start)
        calls = ToolCallText() if tools else None
        try:
            async for item in items:
                if isinstance(item, Done):
                    continue
                text = calls.push(item) if calls is not None else item
                if text:
                    yield text
        finally:
            await items.aclose()
        if calls is not None:
            rest, made = calls.finish()
            if rest:
                yield rest
            for call in made:
                yield call

    def _observe(self, generation: Generation) -> None:
        self.metrics.tokens.inc(generation.tokens)
        self.metrics.seconds.observe(generation.seconds)
        self.metrics.dropped.inc(generation.dropped_messages)
        self.metrics.replies.labels("cancelled" if generation.cancelled else "complete").inc()

    async def aclose(self) -> None:
        """Stop the workers after their current token and free the model."""
        import anyio

        if self.pool is not None:
            pool, self.pool = self.pool, None
            await anyio.to_thread.run_sync(pool.close)
