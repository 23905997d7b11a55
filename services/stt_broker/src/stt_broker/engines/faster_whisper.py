"""faster-whisper (CTranslate2) in process, on a CTranslate2 model directory."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from stt_broker.engines.base import Segment, SegmentCallback, TranscribeOptions, Transcript, Word
from voicestack_common.audio import Pcm


class FasterWhisperEngine:
    """A CTranslate2 Whisper model; one instance per worker thread."""

    backend = "faster-whisper"

    def __init__(
        self,
        model_dir: Path,
        *,
        threads: int = 2,
        compute_type: str = "int8",
        device: str = "cpu",
        model_id: str | None = None,
        beam_size: int = 1,
        best_of: int = 5,
        temperature_inc: float = 0.2,
    ) -> None:
        self.model_dir = model_dir
        self.beam_size = beam_size
        self.best_of = best_of
        self.temperature_inc = temperature_inc
        self.threads = threads
        self.compute_type = compute_type
        self.device = device
        self.model = model_id or model_dir.name
        self.multilingual = not self.model.endswith(".en")
        self._model: Any = None

    def load(self) -> None:
        """Load the model from its directory (a path: never a hub name)."""
        from faster_whisper import WhisperModel

        if not (self.model_dir / "model.bin").is_file():
            raise FileNotFoundError(f"no CTranslate2 model.bin in {self.model_dir}")
        self._model = WhisperModel(
            str(self.model_dir),
            device=self.device,
            compute_type=self.compute_type,
            cpu_threads=self.threads,
            num_workers=1,
            local_files_only=True,
        )
        self.multilingual = bool(self._model.model.is_multilingual)

    def transcribe(
        self,
        audio: Pcm,
        options: TranscribeOptions,
        *,
        on_segment: SegmentCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> Transcript:
        """Greedy or beam decoding with temperature fallback; the broker does voice-activity detection."""
        if self._model is None:
            raise RuntimeError("engine not loaded")
        generator, info = self._model.transcribe(
            audio.samples,
            language=options.language or (None if self.multilingual else "en"),
            initial_prompt=options.prompt or None,
            temperature=_temperatures(options.temperature, self.temperature_inc),
            beam_size=self.beam_size,
            best_of=self.best_of,
            word_timestamps=options.word_timestamps,
            condition_on_previous_text=False,
            vad_filter=False,
        )
        segments: list[Segment] = []
        for raw in generator:  # decoding happens as this generator is consumed
            segment = Segment(
                id=len(segments),
                start=raw.start,
                end=raw.end,
                text=raw.text.strip(),
                tokens=tuple(raw.tokens),
                avg_logprob=raw.avg_logprob,
                no_speech_prob=raw.no_speech_prob,
                temperature=raw.temperature or 0.0,
                words=tuple(Word(w.start, w.end, w.word.strip(), w.probability) for w in raw.words or ()),
            )
            segments.append(segment)
            if on_segment is not None:
                on_segment(segment)
            if cancel is not None and cancel.is_set():
                break
        text = " ".join(s.text for s in segments if s.text).strip()
        return Transcript(text=text, language=info.language, duration=audio.duration, segments=tuple(segments))

    def close(self) -> None:
        """Drop the model."""
        self._model = None


def _temperatures(start: float, increment: float) -> list[float]:
    """The fallback schedule: ``start``, then up by ``increment`` to 1.0 (as whisper.cpp does)."""
    if increment <= 0:
        return [start]
    steps = round((1.0 - start) / increment + 1e-9)
    return [round(start + i * increment, 4) for i in range(steps + 1)]
