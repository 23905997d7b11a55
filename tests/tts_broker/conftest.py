"""TTS broker fixtures: the real Kokoro engine on the bundled model, and Whisper to listen back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from devkit.servers import serve
from devkit.speech import words
from tts_broker.app import create_app
from tts_broker.settings import TtsSettings
from voicestack_common.audio import Pcm, decode_audio, pcm16_to_pcm, resample

# Short texts (Kokoro runs about 1 s per second of audio here) that Whisper
# tiny.en hears word for word in the bundled voices.
PHRASE = "Please call me back tomorrow morning."
THREE_SENTENCES = "Hello there. The quick brown fox jumps over the lazy dog. Thank you very much."


def tts_settings(model_cache: Path, **overrides: Any) -> TtsSettings:
    """Settings for tests: the test model cache, nothing from the environment or a .env file."""
    return TtsSettings(_env_file=None, cache_dir=model_cache, **overrides)  # type: ignore[call-arg]


@pytest.fixture(scope="package")
def tts_client(model_cache: Path) -> Iterator[TestClient]:
    """The default broker (bundled Kokoro, one worker) with its lifespan running."""
    with TestClient(create_app(tts_settings(model_cache))) as client:
        yield client


class Listener:
    """Whisper tiny.en (faster-whisper, the STT broker's bundled model) turning audio back into words."""

    def __init__(self) -> None:
        from faster_whisper import WhisperModel

        from stt_broker.models import bundled_ct2_dir

        self._model: Any = WhisperModel(str(bundled_ct2_dir()), device="cpu", compute_type="int8", cpu_threads=2)

    def words(self, audio: bytes | Pcm, fmt: str = "auto") -> list[str]:
        """The words heard in a file (any container), raw 24 kHz PCM16 (``fmt='pcm'``), or samples."""
        if isinstance(audio, Pcm):
            pcm = resample(audio, 16_000)
        elif fmt == "pcm":
            pcm = resample(pcm16_to_pcm(audio, 24_000), 16_000)
        else:
            pcm = decode_audio(audio)
        segments, _ = self._model.transcribe(
            np.asarray(pcm.samples), language="en", beam_size=1, condition_on_previous_text=False, vad_filter=False
        )
        return words(" ".join(s.text for s in segments))


@pytest.fixture(scope="package")
def listener() -> Listener:
    """One Whisper model for the whole package."""
    return Listener()


@pytest.fixture(scope="package")
def tts_server(model_cache: Path) -> Iterator[str]:
    """A real uvicorn server (cache off, so every request synthesizes); yields its base URL."""
    with serve(create_app(tts_settings(model_cache, cache_max_entries=0))) as url:
        yield url
