"""Rendering a transcript as text, SRT, WebVTT and the JSON shapes."""

from __future__ import annotations

from typing import Any

from stt_broker.engines.base import Segment, Transcript
from stt_broker.languages import LANGUAGES


def _clock(seconds: float, separator: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def to_srt(transcript: Transcript) -> str:
    """SubRip: numbered cues, comma before milliseconds."""
    cues = [
        f"{i}\n{_clock(s.start, ',')} --> {_clock(s.end, ',')}\n{s.text}\n"
        for i, s in enumerate(_spoken(transcript), start=1)
    ]
    return "\n".join(cues)


def to_vtt(transcript: Transcript) -> str:
    """WebVTT: a header, then cues with a dot before milliseconds."""
    cues = [f"{_clock(s.start, '.')} --> {_clock(s.end, '.')}\n{s.text}\n" for s in _spoken(transcript)]
    return "WEBVTT\n\n" + "\n".join(cues)


def _spoken(transcript: Transcript) -> list[Segment]:
    return [s for s in transcript.segments if s.text]


def segment_json(segment: Segment, *, with_words: bool) -> dict[str, Any]:
    """A segment as OpenAI's verbose_json writes it (plus words when asked)."""
    body: dict[str, Any] = {
        "id": segment.id,
        "seek": 0,
        "start": round(segment.start, 3),
        "end": round(segment.end, 3),
        "text": segment.text,
        "tokens": list(segment.tokens),
        "temperature": segment.temperature,
        "avg_logprob": round(segment.avg_logprob, 6),
        "compression_ratio": 0.0,
        "no_speech_prob": round(segment.no_speech_prob, 6),
    }
    if with_words:
        body["words"] = [word_json(w) for w in segment.words]
    return body


def word_json(word: Any) -> dict[str, Any]:
    """One timed word."""
    return {
        "word": word.word,
        "start": round(word.start, 3),
        "end": round(word.end, 3),
        "probability": round(word.probability, 4),
    }


def language_name(code: str) -> str:
    """OpenAI's verbose_json reports the language by name."""
    return LANGUAGES.get(code, code)
