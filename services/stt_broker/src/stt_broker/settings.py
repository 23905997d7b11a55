"""STT broker settings: ``STT_*`` environment variables (``SST_*`` from the guide still work)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from stt_broker import vad_defaults
from stt_broker.sizing import ThreadBudget, pool_layout, usable_cores
from voicestack_common.files import default_cache_dir
from voicestack_common.settings import LogLevel, ServiceSettings, env_aliases, names_list, use_remote_engine

DtwPreset = Literal[
    "none",
    "n_top_most",
    "tiny",
    "tiny.en",
    "base",
    "base.en",
    "small",
    "small.en",
    "medium",
    "medium.en",
    "large.v1",
    "large.v2",
    "large.v3",
    "large.v3.turbo",
]
BEAM_SIZE_DEFAULT = 1
# A catalog id: a model name, optionally with a quantization suffix (base-q5_1).
_MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


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

    model: str = "auto"
    """Model for requests that name none: ``auto`` picks per request (an English-only model such as
    ``tiny.en`` for English on a CPU with at most ``auto_english_max_cores`` cores, the multilingual
    model for everything else, including requests with no language, so detection works), or a fixed
    id from ``models``. ``whisper-1`` always means this choice. With ``model_path`` the file is the
    default; the faster-whisper and remote engines serve their one model."""

    models: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["tiny.en", "base"])
    """The catalog: model ids clients may name (comma-separated or a JSON list). ``tiny.en`` and
    ``base`` ship offline (converted to ggml once); ``-q8_0`` / ``-q5_1`` names (``base-q5_1``) are
    quantized once on first use or by ``models prepare``; other ids need ``ggml-ID.bin`` in the
    cache (``stt-broker models pull``). Each loads on first use (whispercpp engine only)."""

    model_ttl: float = Field(default=300.0, ge=-1)
    """Seconds a model may stay unused before it is unloaded (-1: never). The default model(s)
    stay loaded."""

    model_memory_limit_mb: int = Field(default=0, ge=0)
    """Memory the loaded models may take together, estimated from their file sizes and contexts;
    loading one more first unloads idle models, least recently used first. 0: no ceiling."""

    auto_english_max_cores: int = Field(default=4, ge=0)
    """``model=auto``: on a CPU-only machine with at most this many usable cores, English requests
    go to the English-only model (faster at the same accuracy); 0 never does."""

    model_path: Path | None = None
    """A ggml model file (whispercpp) or CTranslate2 model directory (faster-whisper).
    Set: it joins the catalog and is the default model. Unset: the ``models`` catalog."""

    quantization: Literal["f16", "q8_0", "q5_1"] = "f16"
    """Weights of the catalog's models named without a suffix: ``f16`` as converted, or a ``q8_0`` /
    ``q5_1`` copy quantized once into the cache (``tiny.en`` then serves as ``tiny.en-q8_0``; see the
    WER and speed table in ``docs/benchmarks.md``)."""

    model_id: str | None = None
    """Model name reported to clients; derived from the file name when unset."""

    cache_dir: Path = Field(default_factory=default_cache_dir)
    """Directory for converted models (written once, atomically)."""

    threads: int = Field(default=0, ge=0, le=256)
    """CPU threads per model context, fixed (elastic threads off); 0 chooses from the usable cores
    (see ``docs/benchmarks.md``): per decode with ``elastic_threads``, else half the cores, at least 1
    and at most 4 (whisper.cpp's own cap)."""

    elastic_threads: bool = True
    """whisper.cpp on the CPU with ``threads`` 0: each decode takes its threads as it starts: all the
    usable cores (at most 4, whisper.cpp's own default) for a lone request, an even share of them
    while others run, at least 1. Off: a fixed count per context (half the cores)."""

    workers: int = Field(default=0, ge=0, le=64)
    """Model contexts, each with its own thread: how many requests run at once; 0 chooses: one per
    usable core with elastic threads (CPU whisper.cpp), else the cores divided by the threads on CPU,
    4 with ``use_gpu``."""

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

    vad_speech_pad_ms: int = Field(default=vad_defaults.SPEECH_PAD_MS, ge=0)
    """Audio kept on each side of a speech region, in milliseconds (tuned on the WER set)."""

    vad_min_gap_ms: int = Field(default=vad_defaults.MIN_GAP_MS, ge=0)
    """Pauses shorter than this stay in the audio whisper sees; only longer silences are cut."""

    compute_type: str = "int8"
    """CTranslate2 compute type for the faster-whisper engine (int8, float32, float16 on GPU)."""

    use_gpu: bool = False
    """Run whisper.cpp / CTranslate2 on the GPU (needs a CUDA build)."""

    gpu_device: int = Field(default=0, ge=0)
    """CUDA device index for whisper.cpp contexts (whisper.cpp's ``gpu_device``)."""

    flash_attn: bool = True
    """whisper.cpp flash attention (its default: on). About 1.3x faster on CPU and GPU alike."""

    dtw_aheads_preset: DtwPreset = "none"
    """Alignment heads for DTW token timestamps (``tiny.en``, ``base``, ``large.v3.turbo``, ...);
    ``none`` (whisper.cpp's default) keeps DTW off. DTW needs flash attention off."""

    dtw_n_top: int = -1
    """DTW with ``n_top_most``: how many top text layers give alignment heads (whisper.cpp: -1)."""

    dtw_mem_size: int = Field(default=128 * 1024 * 1024, gt=0)
    """Bytes whisper.cpp reserves for DTW (its default: 128 MiB)."""

    beam_size: int = Field(default=BEAM_SIZE_DEFAULT, ge=1, le=16)
    """Decoding: 1 is greedy (whisper.cpp's library default); above 1, beam search with that many
    beams (whisper.cpp's CLI and the reference implementation use 5). Default chosen by the WER
    benchmark in ``docs/benchmarks.md``."""

    best_of: int = Field(default=5, ge=1, le=16)
    """Greedy decoding: candidates sampled at a fallback temperature above 0 (whisper.cpp: 5)."""

    patience: float = -1.0
    """Beam search patience (whisper.cpp: -1, i.e. 1.0 as in the reference implementation)."""

    temperature_inc: float = Field(default=0.2, ge=0.0, le=1.0)
    """Temperature fallback: when a segment fails the entropy or log-probability check, decode it
    again at this much higher temperature, up to 1.0 (whisper.cpp and the reference: 0.2; 0 disables)."""

    entropy_thold: float = 2.4
    """Fallback when the decoded tokens' compression-like entropy is above this (whisper.cpp: 2.4)."""

    logprob_thold: float = -1.0
    """Fallback when the average token log-probability is below this (whisper.cpp: -1.0)."""

    no_speech_thold: float = 0.6
    """A window whose no-speech probability is above this is treated as silent (whisper.cpp: 0.6)."""

    length_penalty: float = -1.0
    """Beam ranking length penalty alpha; -1 ranks by plain length normalisation (whisper.cpp: -1)."""

    max_initial_ts: float = 1.0
    """Latest first timestamp the decoder may emit, in seconds (whisper.cpp: 1.0)."""

    suppress_blank: bool = True
    """Suppress a blank first token (whisper.cpp: on)."""

    suppress_nst: bool = False
    """Suppress non-speech tokens such as [MUSIC] (whisper.cpp: off)."""

    suppress_regex: str = ""
    """Tokens matching this regular expression are never emitted (whisper.cpp: none)."""

    audio_ctx: int = Field(default=0, ge=0, le=1500)
    """Encoder context in frames (0: the model's 1500, i.e. 30 s). Smaller is faster but
    loses accuracy; whisper.cpp's default is 0."""

    fit_audio_ctx: bool = False
    """Encode each clip with a context fitted to it (its length plus 5.12 s) instead of whisper.cpp's
    30 s window: on short clips 2-3x less work for the same word error rate on bench_wer's set
    (docs/benchmarks.md). Off by default, as in whisper.cpp; see ``live_fit_partials`` for partials."""

    n_max_text_ctx: int = Field(default=16384, ge=0)
    """Most prompt tokens carried into the decoder (whisper.cpp: 16384)."""

    max_len: int = Field(default=0, ge=0)
    """Longest segment in characters; 0 is unlimited (whisper.cpp: 0)."""

    split_on_word: bool = False
    """With ``max_len``, split segments at word boundaries rather than tokens (whisper.cpp: off)."""

    max_tokens: int = Field(default=0, ge=0)
    """Most tokens per segment; 0 is unlimited (whisper.cpp: 0)."""

    thold_pt: float = 0.01
    """Token timestamp probability threshold (whisper.cpp: 0.01)."""

    thold_ptsum: float = 0.01
    """Token timestamp sum-probability threshold (whisper.cpp: 0.01)."""

    carry_initial_prompt: bool = False
    """Repeat the request's prompt before every 30 s window, not only the first (whisper.cpp: off)."""

    remote_url: str | None = Field(
        default=None, validation_alias=env_aliases("STT_REMOTE_URL", "REMOTE_SST_URL", "remote_url")
    )
    """Base URL of a whisper.cpp server; setting it (or the host and port) selects ``engine=remote``
    (refused at start when ``STT_ENGINE`` names a local engine). Unset: ``http://localhost:8082``."""

    remote_host: str | None = Field(
        default=None, validation_alias=env_aliases("STT_REMOTE_HOST", "REMOTE_SST_HOST", "remote_host")
    )
    """Host of the whisper.cpp server, as the integration guide names it (with ``remote_port``)."""

    remote_port: int | None = Field(
        default=None, ge=1, le=65535, validation_alias=env_aliases("STT_REMOTE_PORT", "REMOTE_SST_PORT", "remote_port")
    )
    """Port of the whisper.cpp server (default 8082)."""

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

    live_fit_partials: bool = True
    """Decode live partials with the encoder context fitted to their audio (``fit_audio_ctx``): a partial
    then costs a fraction of a final, and one still running when the utterance ends delays its final
    less (whisper.cpp cannot stop an encoder pass)."""

    live_fit_finals: bool = False
    """Decode live finals with the encoder context fitted to the utterance too (a short question's final
    then costs a third). Off by default: on bench_wer's set the word error rate is the same, but an
    espeak-ng sentence of tests/stt_broker/test_live.py lost words in 4 runs of 6 fitted (its text
    changing with the decode's thread count), in none with the full window."""

    live_end_of_turn: Literal["model", "silence"] = "silence"
    """How a live utterance ends, unless the session's ``start`` says otherwise (the gateway's voice chat
    asks for ``model``). ``model``: at each pause of ``live_turn_pause_ms`` the Smart Turn model hears
    whether the speaker has finished; yes ends the utterance there, no lets the pause run on up to
    ``live_turn_max_silence_ms``: a turn of conversation, which may hold several sentences.
    ``silence``: after ``live_silence_ms`` (the session's ``silence_ms``) of silence: an utterance per
    sentence or phrase, as dictation wants. Without the model file, always ``silence``."""

    live_turn_pause_ms: int = Field(default=200, ge=64, le=2_000)
    """The pause after which the turn model is asked (``end_of_turn=model``); a decode of the utterance
    starts there too, in either mode, so that its final is ready when the utterance ends."""

    live_turn_max_silence_ms: int = Field(default=2_000, ge=200, le=10_000)
    """With ``end_of_turn=model``: the longest pause the model may hold the utterance open for."""

    live_turn_threshold: float = Field(default=0.5, gt=0, lt=1)
    """The turn model's probability above which the speaker has finished."""

    turn_model_path: Path | None = None
    """An end-of-turn ONNX model with Smart Turn v3's input and output; unset: Smart Turn v3.2 from the
    pipecat-ai 1.14.0 wheel that ``scripts/bootstrap.sh`` fetches (sha256-pinned)."""

    live_max_utterance_seconds: float = Field(default=30.0, ge=2, le=120)
    """Longest live utterance; a longer one is cut at its quietest recent point."""

    live_max_session_seconds: float = Field(default=4 * 3600.0, gt=0)
    """Longest live session (wall-clock seconds); it is then closed with ``session_too_long``."""

    live_idle_timeout: float = Field(default=30.0, gt=0)
    """Seconds with no client message and no final decoding before a live session closes (``idle_timeout``)."""

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

    @field_validator("models", mode="before")
    @classmethod
    def _split_models(cls, value: Any) -> Any:
        return names_list(value)

    @field_validator("models")
    @classmethod
    def _check_models(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("STT_MODELS needs at least one model")
        if bad := [m for m in value if not _MODEL_ID.match(m)]:
            raise ValueError(f"STT_MODELS has malformed ids {bad}")
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _check_model(self) -> SttSettings:
        use_remote_engine(self, "STT_", 8082)
        if self.model_path is not None and not self.model_path.exists():
            raise ValueError(f"STT_MODEL_PATH {self.model_path} does not exist")
        fixed = self.model != "auto" and self.model_path is None and self.engine == "whispercpp"
        if fixed and self.quantized(self.model) not in self.catalog_ids():
            raise ValueError(f"STT_MODEL {self.model!r} is not in STT_MODELS {self.catalog_ids()}")
        if self.dtw_aheads_preset != "none" and self.flash_attn:
            raise ValueError("STT_DTW_AHEADS_PRESET needs STT_FLASH_ATTN=false (whisper.cpp cannot do both)")
        return self

    def quantized(self, model_id: str) -> str:
        """The catalog id of ``model_id``: ``quantization``'s suffix added unless it names one."""
        if self.quantization == "f16" or re.search(r"-q\d_\d$", model_id):
            return model_id
        return f"{model_id}-{self.quantization}"

    def catalog_ids(self) -> list[str]:
        """``models`` as catalog ids (with ``quantization`` applied)."""
        return list(dict.fromkeys(self.quantized(m) for m in self.models))

    @property
    def remote_server(self) -> str:
        """The remote engine's base URL (the validator has filled in the default)."""
        return self.remote_url or ""

    @property
    def elastic(self) -> bool:
        """Whether each decode takes its threads as it starts (CPU whisper.cpp, ``threads`` unset)."""
        return self.elastic_threads and self.engine == "whispercpp" and not self.use_gpu and not self.threads

    def layout(self) -> tuple[int, int]:
        """``(workers, threads)``: the configured values, or chosen from the usable cores (elastic:
        ``threads`` is the most one decode takes)."""
        return pool_layout(
            usable_cores(), workers=self.workers, threads=self.threads, gpu=self.use_gpu, elastic=self.elastic
        )

    def thread_budget(self) -> ThreadBudget | None:
        """The cores the decodes share with elastic threads; ``None`` when threads are fixed."""
        return ThreadBudget(usable_cores()) if self.elastic else None
