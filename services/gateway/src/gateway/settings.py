"""Gateway settings: ``GATEWAY_*`` environment variables (the integration guide's names still work)."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from voicestack_common.settings import LogLevel, ServiceSettings, env_aliases
from voicestack_common.text import FIRST_REPLY_PIECE_CHARS, MAX_PIECE_CHARS

# The integration guide's voice names, each with voices to try in order when the
# TTS broker lacks it: a voice of the full 54-voice model, then a bundled one of
# the same register. A name whose candidates are all missing gets the default voice.
DEFAULT_VOICE_FALLBACKS: dict[str, list[str]] = {
    "af_heart": ["af_heart", "jf_alpha"],
    "af": ["af_heart", "af_bella", "jf_alpha"],
    "am": ["am_michael", "am_adam", "jm_kumo"],
    "bf": ["bf_emma", "jf_alpha"],
    "bm": ["bm_george", "jm_kumo"],
}


def split_list(value: str) -> list[str]:
    """A comma-separated setting as a list, blanks dropped."""
    return [part.strip() for part in value.split(",") if part.strip()]


def _check_urls(value: str, name: str, *, allow_empty: bool = False) -> str:
    urls = [url.rstrip("/") for url in split_list(value)]
    if not urls and not allow_empty:
        raise ValueError(f"{name} needs at least one URL")
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{name}: {url!r} is not an http(s) URL")
        if parts.path or parts.query:
            raise ValueError(f"{name}: {url!r} must be a base URL without a path")
    return ",".join(dict.fromkeys(urls))


class GatewaySettings(ServiceSettings):
    """Configuration of the gateway, the stack's public entry point."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_")

    host: str = Field(default="127.0.0.1", validation_alias=env_aliases("GATEWAY_HOST", "host"))
    """Interface to listen on (``0.0.0.0`` in containers)."""

    port: int = Field(default=8000, ge=0, le=65535, validation_alias=env_aliases("GATEWAY_PORT", "port"))
    """TCP port of the public API."""

    log_level: LogLevel = Field(
        default="INFO", validation_alias=env_aliases("GATEWAY_LOG_LEVEL", "BACKEND_LOG_LEVEL", "log_level")
    )
    """Log level. Audio and transcript text are never logged."""

    stt_urls: str = Field(
        default="http://127.0.0.1:9082",
        validation_alias=env_aliases("GATEWAY_STT_URLS", "STT_BROKER_URL", "SST_BROKER_URL", "stt_urls"),
    )
    """STT broker base URLs, comma-separated: requests go round-robin to the healthy ones."""

    tts_urls: str = Field(
        default="http://127.0.0.1:8080", validation_alias=env_aliases("GATEWAY_TTS_URLS", "TTS_BROKER_URL", "tts_urls")
    )
    """TTS broker base URLs, comma-separated: requests go round-robin to the healthy ones."""

    stt_timeout: float = Field(
        default=300.0,
        gt=0,
        validation_alias=env_aliases(
            "GATEWAY_STT_TIMEOUT", "STT_REQUEST_TIMEOUT", "SST_REQUEST_TIMEOUT", "stt_timeout"
        ),
    )
    """Seconds to wait for an STT broker's whole answer, upload included; 504 beyond it."""

    tts_timeout: float = Field(
        default=30.0, gt=0, validation_alias=env_aliases("GATEWAY_TTS_TIMEOUT", "TTS_REQUEST_TIMEOUT", "tts_timeout")
    )
    """Seconds to wait for a TTS broker's whole answer (a stream: its first bytes, then between two
    chunks); 504 beyond it."""

    stt_max_request_bytes: int = Field(default=50 * 1024 * 1024, gt=0)
    """Largest request the gateway forwards to an STT broker; keep it equal to the brokers'
    ``STT_MAX_UPLOAD_BYTES``. Larger requests are answered 413 here, without reaching a broker."""

    tts_max_request_bytes: int = Field(default=1024 * 1024, gt=0)
    """Largest request the gateway forwards to a TTS broker; keep it equal to the brokers'
    ``TTS_MAX_UPLOAD_BYTES``. Larger requests are answered 413 here, without reaching a broker."""

    connect_timeout: float = Field(default=3.0, gt=0)
    """Seconds to open a connection to a broker replica before trying another one."""

    max_connections: int = Field(default=100, ge=1)
    """Pooled connections per broker (all its replicas together)."""

    upstream_retries: int = Field(default=1, ge=0, le=5)
    """How many other replicas an idempotent request is retried on after a refused connection or
    a timeout."""

    health_interval: float = Field(default=5.0, gt=0)
    """Seconds between background health checks of every replica (a replica marked down comes back
    on its first good check)."""

    health_timeout: float = Field(default=2.0, gt=0)
    """Seconds a replica's ``/readyz`` may take before it counts as down."""

    health_down_after: int = Field(default=3, ge=1)
    """Health checks in a row that must time out before a replica that still accepts connections
    counts as down. A busy broker answers its probe late; a dead one refuses the connection (down at
    once). Until then the replica stays in rotation, shown as ``busy``."""

    health_cache_seconds: float = Field(default=1.0, ge=0)
    """How long ``/api/voice/health`` reuses its last live check (concurrent callers share one)."""

    resolve_replicas: bool = True
    """Expand each replica host name to every address it resolves to (``docker compose --scale``);
    ``localhost`` and IP addresses are used as written."""

    resolve_interval: float = Field(default=30.0, gt=0)
    """Seconds between DNS look-ups of replica host names (replicas come and go with them)."""

    api_keys: SecretStr = Field(default=SecretStr(""))
    """API keys, comma-separated. Set: every ``/api/voice/*`` and ``/v1/*`` call needs
    ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``. Empty: no authentication."""

    transcribe_rate_limit: float = Field(default=0.0, ge=0)
    """Transcriptions per minute per API key (per client address without keys); 0 is unlimited."""

    synthesize_rate_limit: float = Field(default=0.0, ge=0)
    """Syntheses per minute per API key (per client address without keys); 0 is unlimited."""

    rate_limit_burst: int = Field(default=5, ge=1)
    """Requests a client may make at once before the per-minute rate applies."""

    cors_origins: str = ""
    """Origins allowed to call the API from a browser, comma-separated (``*`` for any); empty
    turns CORS off. WebSockets check the same list: a handshake whose ``Origin`` is neither listed
    nor the gateway's own is refused (clients that send no ``Origin``, like SDKs, are not browsers)."""

    cors_allow_credentials: bool = False
    """Let browsers send cookies and HTTP auth with cross-origin calls (never with ``*``)."""

    trusted_hosts: str = "localhost,127.0.0.1,::1"
    """Host names the gateway answers to, comma-separated (``*.example.com`` wildcards); ``*`` is any.
    The default, loopback names, fits the local stack and stops DNS rebinding (a web page reaching
    ``localhost`` under a name of its own); list the names clients use when serving a network."""

    events_url: str = Field(
        default="http://127.0.0.1:9090",
        validation_alias=env_aliases("GATEWAY_EVENTS_URL", "MQTT_BRIDGE_URL", "events_url"),
    )
    """MQTT bridge base URL: every finished transcription and synthesis is POSTed to its
    ``/v1/events`` in the background. Empty turns events off."""

    events_synthesis: bool = True
    """Send an event for each synthesis too, not only for transcriptions."""

    events_queue_size: int = Field(default=1000, ge=1)
    """Events held in memory while the bridge is unreachable; beyond it new ones are dropped
    (counted in ``gateway_events_dropped_total``)."""

    events_timeout: float = Field(default=5.0, gt=0)
    """Seconds one event POST may take before it is retried."""

    batch_max_items: int = Field(default=32, ge=1)
    """Most requests one ``/api/voice/synthesize-batch`` call may hold."""

    batch_concurrency: int = Field(default=4, ge=1)
    """Syntheses of one batch that run at the same time."""

    ws_max_in_flight: int = Field(default=4, ge=1)
    """Requests one WebSocket may have running at once; more are answered with an error."""

    realtime_max_sessions: int = Field(default=4, ge=1)
    """Most ``/v1/realtime`` sessions one caller (API key, or address without keys) may hold open at once."""
    realtime_voice: str = ""
    """The voice ``/v1/realtime`` sessions start with (``session.update`` changes it); empty: the TTS broker's
    default voice."""

    live_max_sessions_per_key: int = Field(default=4, ge=1)
    """Live transcription sessions one API key (or address) may hold at once: ``/api/voice/ws/transcribe``
    sessions and the voice loops of ``/api/voice/ws/chat`` streaming audio, together."""

    live_max_frame_bytes: int = Field(default=256 * 1024, ge=1024)
    """Largest message a live transcription client may send (``frame_too_large`` above it)."""

    page: bool = True
    """Serve the voice page at ``/`` (static files, no API key needed to load it; every call it makes
    needs one when keys are on)."""

    voice_fallbacks: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_VOICE_FALLBACKS.items()}
    )
    """The integration guide's voice names (JSON: name to voices tried in order) used when the
    TTS broker lacks them, so clients written for the guide keep working."""

    conversation_urls: str = Field(
        default="http://127.0.0.1:9100",
        validation_alias=env_aliases("GATEWAY_CONVERSATION_URLS", "GATEWAY_CONVERSATION_URL", "conversation_urls"),
    )
    """Conversation service base URLs, comma-separated (``/api/conversations``, the voice loop, the seed
    flows). Empty turns conversations off (those routes answer 503)."""

    conversation_timeout: float = Field(default=120.0, gt=0)
    """Seconds a call to the conversation service may take; a streamed reply may wait this long per chunk."""

    chat_voice: str | None = None
    """Voice of spoken replies when ``start_conversation`` names none (unset: the TTS broker's default)."""

    reply_first_piece_chars: int = Field(default=FIRST_REPLY_PIECE_CHARS, ge=0, le=MAX_PIECE_CHARS)
    """A spoken reply starts with a short piece, so its first audio comes sooner: the reply's first
    clause or sentence when it ends within this many characters (and holds two words), else its
    first words up to it. Later pieces are whole sentences. 0: the first piece is a whole sentence
    too (cut at a clause only beyond 100 characters)."""

    chat_audio_wait: float = Field(default=30.0, gt=0, le=300)
    """Seed 000's ``GET /audio``: seconds to wait for the next piece of reply audio before answering 404."""

    chat_audio_ttl: float = Field(default=300.0, gt=0)
    """Seed 000's ``/upload`` turns: seconds undelivered reply audio is kept for ``GET /audio`` (in the
    conversation service, so any gateway replica serves it)."""

    @field_validator("stt_urls", "tts_urls")
    @classmethod
    def _broker_urls(cls, value: str, info: ValidationInfo) -> str:
        return _check_urls(value, f"GATEWAY_{str(info.field_name).upper()}")

    @field_validator("conversation_urls")
    @classmethod
    def _conversation_urls(cls, value: str) -> str:
        return _check_urls(value, "GATEWAY_CONVERSATION_URLS", allow_empty=True)

    @field_validator("events_url")
    @classmethod
    def _events_url(cls, value: str) -> str:
        checked = _check_urls(value, "GATEWAY_EVENTS_URL", allow_empty=True)
        if "," in checked:
            raise ValueError("GATEWAY_EVENTS_URL takes one URL")
        return checked

    @model_validator(mode="after")
    def _check_cors(self) -> GatewaySettings:
        if self.cors_allow_credentials and "*" in split_list(self.cors_origins):
            raise ValueError("GATEWAY_CORS_ALLOW_CREDENTIALS needs explicit origins, not '*'")
        return self

    @property
    def stt_replicas(self) -> list[str]:
        """The STT broker URLs as a list."""
        return split_list(self.stt_urls)

    @property
    def tts_replicas(self) -> list[str]:
        """The TTS broker URLs as a list."""
        return split_list(self.tts_urls)

    @property
    def conversation_replicas(self) -> list[str]:
        """The conversation service URLs as a list (empty: conversations off)."""
        return split_list(self.conversation_urls)

    @property
    def keys(self) -> list[str]:
        """The configured API keys (empty: authentication off)."""
        return split_list(self.api_keys.get_secret_value())
