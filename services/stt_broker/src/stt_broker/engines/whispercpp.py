"""whisper.cpp in process, through pywhispercpp: one context per engine instance."""

from __future__ import annotations

import logging
import math
import threading
from pathlib import Path
from typing import Any

from stt_broker.engines.base import (
    Segment,
    SegmentCallback,
    TranscribeOptions,
    Transcript,
    merge_word_pieces,
)
from voicestack_common.audio import Pcm

logger = logging.getLogger(__name__)

# whisper.cpp reports times in centiseconds.
_CS = 0.01


def model_id_from_path(path: Path) -> str:
    """``ggml-base.en-q5_1.bin`` → ``base.en-q5_1``."""
    name = path.name
    name = name.removeprefix("ggml-")
    return name.removesuffix(".bin")


class WhisperCppEngine:
    """A whisper.cpp context on a ggml model file."""

    backend = "whisper.cpp"

    def __init__(
        self,
        model_path: Path,
        *,
        threads: int = 2,
        model_id: str | None = None,
        use_gpu: bool = False,
    ) -> None:
        self.model_path = model_path
        self.threads = threads
        self.model = model_id or model_id_from_path(model_path)
        self.multilingual = not self.model.split("-")[0].endswith(".en")
        self._use_gpu = use_gpu
        self._model: Any = None

    def load(self) -> None:
        """Load the ggml file into a new context (never a model name: that downloads)."""
        from pywhispercpp.model import Model

        if not self.model_path.is_file():
            raise FileNotFoundError(f"ggml model not found: {self.model_path}")
        logging.getLogger("pywhispercpp").setLevel(logging.WARNING)
        self._model = Model(
            str(self.model_path),
            n_threads=self.threads,
            print_progress=False,
            print_realtime=False,
            redirect_whispercpp_logs_to=None,
            # Pinned off, as every test and benchmark ran it (whisper.cpp 1.8 may default it on).
            context_params={"use_gpu": self._use_gpu, "flash_attn": False},
        )
        import _pywhispercpp as pw

        self.multilingual = bool(pw.whisper_is_multilingual(self._model._ctx))

    def transcribe(
        self,
        audio: Pcm,
        options: TranscribeOptions,
        *,
        on_segment: SegmentCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> Transcript:
        """Decode greedily (deterministic); segments go to ``on_segment`` as whisper.cpp emits them."""
        import _pywhispercpp as pw

        if self._model is None:
            raise RuntimeError("engine not loaded")
        language = options.language or ("auto" if self.multilingual else "en")
        ctx = self._model._ctx
        emitted = 0

        def segment_ready(_: object) -> None:
            nonlocal emitted
            total = pw.whisper_full_n_segments(ctx)
            for index in range(emitted, total):
                if on_segment is not None:
                    on_segment(self._segment(ctx, index, options.word_timestamps))
            emitted = total

        self._model.transcribe(
            audio.samples,
            new_segment_callback=segment_ready if on_segment is not None else None,
            abort_callback=(lambda: cancel.is_set()) if cancel is not None else None,
            language=language,
            initial_prompt=options.prompt or "",
            temperature=options.temperature,
            token_timestamps=options.word_timestamps,
            no_context=True,
        )
        segments = tuple(self._segment(ctx, i, options.word_timestamps) for i in range(pw.whisper_full_n_segments(ctx)))
        detected = pw.whisper_lang_str(pw.whisper_full_lang_id(ctx)) or language
        text = " ".join(s.text for s in segments if s.text).strip()
        return Transcript(text=text, language=detected, duration=audio.duration, segments=segments)

    def close(self) -> None:
        """Free the context."""
        self._model = None

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
