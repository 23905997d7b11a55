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
    ) -> None:
        self.model_dir = model_dir
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
        """Greedy decoding; the broker does voice-activity detection before this."""
        if self._model is None:
            raise RuntimeError("engine not loaded")
        generator, info = self._model.transcribe(
            audio.samples,
            language=options.language or (None if self.multilingual else "en"),
            initial_prompt=options.prompt or None,
            temperature=options.temperature if options.temperature > 0 else [0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
            beam_size=1,
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
