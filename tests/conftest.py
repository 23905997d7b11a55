"""Fixtures shared by every test tier."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.speech import TEST_CACHE, kokoro_speech
from voicestack_common.audio import Pcm

SENTENCE = "The quick brown fox jumps over the lazy dog."
TWO_SENTENCES = "Please call me back tomorrow morning. The meeting starts at noon."


@pytest.fixture(scope="session")
def model_cache() -> Path:
    """Converted and assembled models, kept between runs (nothing here is downloaded)."""
    path = TEST_CACHE / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def sentence() -> Iterator[tuple[str, Pcm]]:
    """A clear Kokoro sentence (24 kHz) and its text."""
    return SENTENCE, kokoro_speech(SENTENCE)


@pytest.fixture(scope="session")
def two_sentences() -> Iterator[tuple[str, Pcm]]:
    """Two Kokoro sentences, a man's voice, about five seconds."""
    return TWO_SENTENCES, kokoro_speech(TWO_SENTENCES, voice="jm_kumo")
