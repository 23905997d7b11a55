"""The text-to-speech engine interface and its small, frozen request types."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from voicestack_common.audio import Pcm


@dataclass(frozen=True, slots=True)
class VoiceBlend:
    """One voice, or several mixed by weight (weights sum to 1)."""

    components: tuple[tuple[str, float], ...]

    @property
    def names(self) -> tuple[str, ...]:
        """The voices mixed, in order."""
        return tuple(name for name, _ in self.components)

    @property
    def spec(self) -> str:
        """Kokoro-FastAPI's spelling: ``af_bella``, ``af_bella+af_sky`` or ``af_bella(0.7)+af_sky(0.3)``."""
        weights = {weight for _, weight in self.components}
        if len(weights) == 1:
            return "+".join(self.names)
        return "+".join(f"{name}({weight:.4g})" for name, weight in self.components)

    @classmethod
    def single(cls, name: str) -> VoiceBlend:
        """Just one voice."""
        return cls(((name, 1.0),))


@dataclass(frozen=True, slots=True)
class SpeechRequest:
    """What one synthesis asks of an engine; validated by the broker before it gets here."""

    text: str
    voice: VoiceBlend
    lang_code: str
    """Kokoro's one-letter code (``a`` American English, ``b`` British English, ...)."""
    speed: float = 1.0


class TtsEngine(Protocol):
    """A text-to-speech backend. Methods block: the broker calls them from one worker thread."""

    backend: str
    """Engine family reported to clients, e.g. ``kokoro-onnx``."""
    model: str
    """Model id, e.g. ``kokoro-82m-int8``."""
    sample_rate: int
    static_voices: bool
    """Whether ``list_voices`` can change while the engine runs (a remote server's can)."""

    def load(self) -> None: ...

    def list_voices(self) -> tuple[str, ...]:
        """The voices this engine can speak with (thread-safe)."""
        ...

    @property
    def unavailable_languages(self) -> Mapping[str, str]:
        """Kokoro language codes this engine cannot speak here, each with the reason (known after ``load``)."""
        ...

    def stream(self, request: SpeechRequest, cancel: threading.Event) -> Iterator[Pcm]:
        """Mono audio at ``sample_rate``, a chunk per sentence or clause, as it is synthesized.

        Stops early, between chunks, once ``cancel`` is set.
        """
        ...

    def close(self) -> None: ...
