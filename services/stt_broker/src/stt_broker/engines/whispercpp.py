"""whisper.cpp in process, through pywhispercpp: one context per engine instance."""

from __future__ import annotations

import logging
import math
import threading
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from stt_broker.engines.base import (
    Segment,
    SegmentCallback,
    TranscribeOptions,
    Transcript,
    merge_word_pieces,
)
from stt_broker.sizing import ThreadBudget
from voicestack_common.audio import Pcm

logger = logging.getLogger(__name__)

# whisper.cpp reports times in centiseconds.
_CS = 0.01

# The encoder's context: 1500 frames for 30 s, 50 a second. A context fitted to a clip keeps 256
# frames (5.12 s) beyond its audio: with none, tiny.en's word error rate on bench_wer's set doubles
# (0.86 against 0.44); with 256 to 512 it equals the full window's (0.43-0.45).
_FULL_CTX = 1500
_CTX_PER_SECOND = 50
_FIT_PAD_FRAMES = 256


def fitted_audio_ctx(seconds: float) -> int:
    """The encoder context for ``seconds`` of audio with its padding; the full window from about 25 s on."""
    return min(_FULL_CTX, math.ceil(seconds * _CTX_PER_SECOND) + _FIT_PAD_FRAMES)


# pywhispercpp points the whole process's stderr elsewhere while a context loads, and
# whisper.cpp's log callback is process-wide too: contexts load one at a time, or
# concurrent loads interleave the swaps and leave stderr on /dev/null for good.
_LOAD_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class WhisperCppParams:
    """whisper.cpp's context and decoding parameters; every default is whisper.cpp's own."""

    use_gpu: bool = False
    gpu_device: int = 0
    flash_attn: bool = True
    dtw_aheads_preset: str = "none"
    dtw_n_top: int = -1
    dtw_mem_size: int = 128 * 1024 * 1024
    beam_size: int = 1
    best_of: int = 5
    patience: float = -1.0
    temperature_inc: float = 0.2
    entropy_thold: float = 2.4
    logprob_thold: float = -1.0
    no_speech_thold: float = 0.6
    length_penalty: float = -1.0
    max_initial_ts: float = 1.0
    suppress_blank: bool = True
    suppress_nst: bool = False
    suppress_regex: str = ""
    audio_ctx: int = 0
    n_max_text_ctx: int = 16384
    max_len: int = 0
    split_on_word: bool = False
    max_tokens: int = 0
    thold_pt: float = 0.01
    thold_ptsum: float = 0.01
    carry_initial_prompt: bool = False
    fit_audio_ctx: bool = False
    """The broker's, not whisper.cpp's: every decode gets ``audio_ctx`` fitted to its audio."""

    _CONTEXT = ("use_gpu", "gpu_device", "flash_attn")

    def context_params(self) -> dict[str, Any]:
        """pywhispercpp's ``context_params``."""
        import _pywhispercpp as pw

        params: dict[str, Any] = {key: getattr(self, key) for key in self._CONTEXT}
        if self.dtw_aheads_preset != "none":
            name = "WHISPER_AHEADS_" + self.dtw_aheads_preset.upper().replace(".", "_")
            params |= {
                "dtw_token_timestamps": True,
                "dtw_aheads_preset": getattr(pw.whisper_alignment_heads_preset, name),
                "dtw_n_top": self.dtw_n_top,
                "dtw_mem_size": self.dtw_mem_size,
            }
        return params

    def full_params(self) -> dict[str, Any]:
        """pywhispercpp's decoding keyword arguments (``whisper_full_params``)."""
        skip = {
            *self._CONTEXT,
            "dtw_aheads_preset",
            "dtw_n_top",
            "dtw_mem_size",
            "beam_size",
            "best_of",
            "patience",
            "fit_audio_ctx",
        }
        params = {k: v for k, v in asdict(self).items() if k not in skip}
        if not self.suppress_regex:
            # whisper.cpp's default is no regex (NULL); pywhispercpp would pass "" instead, and
            # whisper.cpp then matches it against all 51,865 tokens at every decoding step: +15 %
            # on a 5 s clip with tiny.en on one thread.
            del params["suppress_regex"]
        params["greedy"] = {"best_of": self.best_of}
        params["beam_search"] = {"beam_size": self.beam_size if self.beam_size > 1 else -1, "patience": self.patience}
        return params


_GPU_BACKENDS = ("CUDA", "METAL", "VULKAN", "SYCL", "HIP", "MUSA", "CANN", "OPENCL")


def has_gpu_backend(system_info: str) -> bool:
    """Whether whisper.cpp's system info names a GPU backend (CPU-only wheels name none)."""
    return any(f"{name} :" in system_info.upper() or f"{name}:" in system_info.upper() for name in _GPU_BACKENDS)


def _forward_log(level: int, text: str, _user_data: object = None) -> None:
    logger.debug("whisper.cpp: %s", text.rstrip(), extra={"whisper_log_level": level})


def model_id_from_path(path: Path) -> str:
    """``ggml-base.en-q5_1.bin`` → ``base.en-q5_1``."""
    name = path.name
    name = name.removeprefix("ggml-")
    return name.removesuffix(".bin")


class WhisperCppEngine:
    """A whisper.cpp context on a ggml model file; with a ``budget``, each decode takes its threads from it."""

    backend = "whisper.cpp"

    def __init__(
        self,
        model_path: Path,
        *,
        threads: int = 2,
        budget: ThreadBudget | None = None,
        model_id: str | None = None,
        params: WhisperCppParams | None = None,
    ) -> None:
        self.model_path = model_path
        self.threads = threads
        self.budget = budget
        self.last_threads = 0
        """The threads the last decode ran on."""
        self.model = model_id or model_id_from_path(model_path)
        self.multilingual = not self.model.split("-")[0].endswith(".en")
        self.params = params or WhisperCppParams()
        self._model: Any = None

    def load(self) -> None:
        """Load the ggml file into a new context (never a model name: that downloads)."""
        try:
            import _pywhispercpp as pw
            from pywhispercpp.model import Model
        except ImportError as exc:  # a shared library the image lacks, e.g. the CUDA runtime
            raise RuntimeError(
                f"whisper.cpp's native library does not load: {exc}. The image needs the CUDA runtime "
                "and cuBLAS for a CUDA build (run services/stt_broker/docker/native_libs.py check on "
                "the venv's lib folder to list what is missing), or install the CPU wheel."
            ) from exc
        if not self.model_path.is_file():
            raise FileNotFoundError(f"ggml model not found: {self.model_path}")
        logging.getLogger("pywhispercpp").setLevel(logging.WARNING)
        with _LOAD_LOCK:
            # The loader's chatter goes to our DEBUG log through whisper.cpp's callback, not
            # by swapping file descriptor 2 (which would silence every thread's stderr).
            pw.whisper_log_set(_forward_log)
            try:
                self._model = Model(
                    str(self.model_path),
                    params_sampling_strategy=1 if self.params.beam_size > 1 else 0,
                    redirect_whispercpp_logs_to=False,
                    context_params=self.params.context_params(),  # type: ignore[arg-type]
                    n_threads=self.threads,
                    print_progress=False,
                    print_realtime=False,
                    print_timestamps=False,
                    no_context=True,
                    **self.params.full_params(),
                )
            finally:
                # A Python callback left installed would be called during interpreter shutdown.
                pw.whisper_log_set(None)

        self.multilingual = bool(pw.whisper_is_multilingual(self._model._ctx))
        if self.params.use_gpu and not has_gpu_backend(str(pw.whisper_print_system_info())):
            logger.warning("STT_USE_GPU=true, but this whisper.cpp build has no GPU backend: running on the CPU")

    def transcribe(
        self,
        audio: Pcm,
        options: TranscribeOptions,
        *,
        on_segment: SegmentCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> Transcript:
        """Decode with the engine's parameters; segments go to ``on_segment`` as whisper.cpp emits them."""
        import _pywhispercpp as pw

        if self._model is None:
            raise RuntimeError("engine not loaded")
        language = options.language or ("auto" if self.multilingual else "en")
        fit = options.fit_context or self.params.fit_audio_ctx
        ctx = self._model._ctx
        emitted = 0

        def segment_ready(_: object) -> None:
            nonlocal emitted
            total = pw.whisper_full_n_segments(ctx)
            for index in range(emitted, total):
                if on_segment is not None:
                    on_segment(self._segment(ctx, index, options.word_timestamps))
            emitted = total

        with self._threads() as threads:
            self.last_threads = threads
            self._model.transcribe(
                audio.samples,
                new_segment_callback=segment_ready if on_segment is not None else None,
                abort_callback=(lambda: cancel.is_set()) if cancel is not None else None,
                language=language,
                initial_prompt=options.prompt or "",
                temperature=options.temperature,
                token_timestamps=options.word_timestamps,
                # pywhispercpp keeps what a call sets: a fitted context is undone by the next call.
                audio_ctx=fitted_audio_ctx(audio.duration) if fit else self.params.audio_ctx,
                n_threads=threads,
            )
        segments = tuple(self._segment(ctx, i, options.word_timestamps) for i in range(pw.whisper_full_n_segments(ctx)))
        detected = pw.whisper_lang_str(pw.whisper_full_lang_id(ctx)) or language
        text = " ".join(s.text for s in segments if s.text).strip()
        return Transcript(text=text, language=detected, duration=audio.duration, segments=segments)

    def close(self) -> None:
        """Free the context."""
        self._model = None

    def _threads(self) -> AbstractContextManager[int]:
        return self.budget.share() if self.budget is not None else nullcontext(self.threads)

    def _segment(self, ctx: Any, index: int, with_words: bool) -> Segment:
        import _pywhispercpp as pw

        eot = pw.whisper_token_eot(ctx)
        tokens: list[int] = []
        logprobs: list[float] = []
        pieces: list[tuple[str, float, float, float]] = []
        for j in range(pw.whisper_full_n_tokens(ctx, index)):
            data = pw.whisper_full_get_token_data(ctx, index, j)
            if data.id >= eot:  # timestamps and other special tokens
                continue
            tokens.append(data.id)
            logprobs.append(math.log(max(data.p, 1e-12)))
            piece = (
                pw.whisper_token_to_bytes(ctx, data.id).decode("utf-8", errors="replace")
                if hasattr(pw, "whisper_token_to_bytes")
                else pw.whisper_full_get_token_text(ctx, index, j)
            )
            pieces.append((piece, data.t0 * _CS, data.t1 * _CS, data.p))
        raw = pw.whisper_full_get_segment_text(ctx, index)
        text = (raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)).strip()
        return Segment(
            id=index,
            start=pw.whisper_full_get_segment_t0(ctx, index) * _CS,
            end=pw.whisper_full_get_segment_t1(ctx, index) * _CS,
            text=text,
            tokens=tuple(tokens),
            avg_logprob=sum(logprobs) / len(logprobs) if logprobs else 0.0,
            words=merge_word_pieces(pieces) if with_words else (),
        )
