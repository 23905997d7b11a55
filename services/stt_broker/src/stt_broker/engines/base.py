"""The speech-to-text engine interface and its small, frozen result types."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from voicestack_common.audio import Pcm


@dataclass(frozen=True, slots=True)
class TranscribeOptions:
    """What a caller may ask of one transcription."""

    language: str | None = None
    """ISO 639-1 code; ``None`` detects it (multilingual models only)."""
    prompt: str | None = None
    temperature: float = 0.0
    word_timestamps: bool = False
    fit_context: bool = False
    """Encode only this audio plus a few seconds, not the model's whole 30 s window (whisper.cpp's
    ``audio_ctx`` fitted to the clip; other engines ignore it). Live partials ask for it."""


@dataclass(frozen=True, slots=True)
class Word:
    """One word with its time span in seconds and the model's probability."""

    start: float
    end: float
    word: str
    probability: float


@dataclass(frozen=True, slots=True)
class Segment:
    """One decoded segment; times are seconds from the start of the upload."""

    id: int
    start: float
    end: float
    text: str
    tokens: tuple[int, ...] = ()
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    temperature: float = 0.0
    words: tuple[Word, ...] = ()


@dataclass(frozen=True, slots=True)
class Transcript:
    """A finished transcription."""

    text: str
    language: str
    duration: float
    segments: tuple[Segment, ...] = field(default_factory=tuple)


SegmentCallback = Callable[[Segment], None]


def merge_word_pieces(pieces: Iterable[tuple[str, float, float, float]]) -> tuple[Word, ...]:
    """Group BPE pieces ``(text, start, end, probability)`` into words.

    A piece that starts with a space starts a word; the others extend it.
    """
    words: list[Word] = []
    for piece, start, end, prob in pieces:
        if not piece.strip():
            continue
        if words and not piece.startswith(" "):
            last = words[-1]
            words[-1] = Word(last.start, max(last.end, end), last.word + piece, min(last.probability, prob))
        else:
            words.append(Word(start, end, piece.strip(), prob))
    return tuple(words)


class SttEngine(Protocol):
    """A speech-to-text backend. Methods block: the broker calls them from one worker thread."""

    backend: str
    """Engine family reported to clients, e.g. ``whisper.cpp``."""
    model: str
    """Model id, e.g. ``tiny.en``."""
    multilingual: bool

    def load(self) -> None: ...

    def transcribe(
        self,
        audio: Pcm,
        options: TranscribeOptions,
        *,
        on_segment: SegmentCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> Transcript:
        """Transcribe 16 kHz mono audio; ``on_segment`` sees each segment as it is decoded."""
        ...

    def close(self) -> None: ...
