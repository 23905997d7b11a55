"""The Kokoro engine itself: pieces, cancellation, blends, the full speed range, and its helpers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tts_broker.engines.base import SpeechRequest, VoiceBlend
from tts_broker.engines.kokoro import (
    MAX_PHONEMES,
    KokoroEngine,
    execution_providers,
    phoneme_batches,
    trim_silence,
)
from tts_broker.models import bundled_files
from tts_broker.settings import TtsSettings
from voicestack_common.errors import InvalidRequest


@pytest.fixture(scope="module")
def engine(model_cache: Path) -> Iterator[KokoroEngine]:
    files = bundled_files(model_cache)
    kokoro = KokoroEngine(files.model, files.voices, model_id="kokoro-82m-int8", threads=2)
    kokoro.load()
    yield kokoro
    kokoro.close()


def test_spinning_is_a_setting_of_the_onnx_session(engine: KokoroEngine, model_cache: Path) -> None:
    """TTS_CPU_SPINNING reaches ONNX Runtime: on by default, off as the test suite runs its brokers."""
    key = "session.intra_op.allow_spinning"
    assert engine._session.get_session_options().get_session_config_entry(key) == "1"
    files = bundled_files(model_cache)
    quiet = KokoroEngine(files.model, files.voices, model_id="kokoro-82m-int8", threads=2, spinning=False)
    quiet.load()
    try:
        assert quiet._session.get_session_options().get_session_config_entry(key) == "0"
    finally:
        quiet.close()
    assert TtsSettings(_env_file=None).cpu_spinning is False  # type: ignore[call-arg]  # tests/conftest.py


def request(text: str, voice: str = "jf_alpha", speed: float = 1.0) -> SpeechRequest:
    return SpeechRequest(text, VoiceBlend.single(voice), "a", speed)


def test_load_runs_a_synthesis_so_the_first_request_does_not_pay_for_the_first_run(
    engine: KokoroEngine, model_cache: Path
) -> None:
    files = bundled_files(model_cache)
    assert KokoroEngine(files.model, files.voices, model_id="kokoro-82m-int8").warm_up_seconds is None
    assert engine.warm_up_seconds is not None
    assert engine.warm_up_seconds > 0


def test_trim_silence_keeps_a_margin_around_the_sound() -> None:
    sound = np.concatenate([np.zeros(24_000), 0.5 * np.ones(2_400), np.zeros(12_000)]).astype(np.float32)
    trimmed = trim_silence(sound)
    assert 2_400 <= len(trimmed) <= 2_400 + 2 * 480 + 2 * 240
    assert len(trim_silence(np.zeros(100, np.float32))) == 100


def test_phoneme_batches_fit_the_model_context() -> None:
    assert phoneme_batches("həlˈoʊ wˈɜːld") == ["həlˈoʊ wˈɜːld"]
    assert phoneme_batches("   ") == []
    long = " ".join(["ðə kwˈɪk bɹˈaʊn fˈɑːks"] * 60)
    batches = phoneme_batches(long)
    assert all(len(b) <= MAX_PHONEMES for b in batches)
    assert " ".join(batches).split() == long.split()


def test_cuda_is_used_when_asked_for_and_there(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import onnxruntime

    assert execution_providers(use_gpu=False) == ["CPUExecutionProvider"]
    monkeypatch.setattr(
        onnxruntime, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    assert execution_providers(use_gpu=True) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert execution_providers(use_gpu=True) == ["CPUExecutionProvider"]
    assert "no CUDA execution provider" in caplog.text


@pytest.mark.engine
def test_other_languages_speak_too(engine: KokoroEngine) -> None:
    for lang, text in (("j", "こんにちは。"), ("f", "Bonjour."), ("e", "Hola."), ("h", "नमस्ते।")):
        chunks = list(engine.stream(SpeechRequest(text, VoiceBlend.single("jf_alpha"), lang), threading.Event()))
        assert sum(c.duration for c in chunks) > 0.2, lang


@pytest.mark.engine
def test_a_language_without_its_front_end_is_refused(engine: KokoroEngine) -> None:
    # Mandarin needs misaki[zh]; espeak-ng's cmn phonemes are not what Kokoro's voices learned.
    assert sorted(engine.unavailable_languages) == ["z"]
    assert "misaki" in engine.unavailable_languages["z"]
    with pytest.raises(InvalidRequest) as info:
        list(engine.stream(SpeechRequest("你好。", VoiceBlend.single("jf_alpha"), "z"), threading.Event()))
    assert info.value.code == "unsupported_language"


@pytest.mark.engine
def test_a_chunk_per_sentence_with_pauses(engine: KokoroEngine) -> None:
    chunks = list(engine.stream(request("Hello there. Thank you very much."), threading.Event()))
    assert len(chunks) == 2
    assert all(c.sample_rate == 24_000 for c in chunks)
    assert not np.any(chunks[0].samples[-int(0.2 * 24_000) :])  # the sentence pause
    assert np.any(chunks[1].samples[-240:])  # the last piece ends on speech


@pytest.mark.engine
def test_cancel_stops_before_the_next_piece(engine: KokoroEngine) -> None:
    cancel = threading.Event()
    stream = engine.stream(request("Hello there. Thank you very much. See you soon."), cancel)
    next(stream)
    cancel.set()
    assert list(stream) == []


@pytest.mark.engine
def test_a_blend_is_the_weighted_mean_of_the_styles(engine: KokoroEngine) -> None:
    mixed = engine.style(VoiceBlend((("jf_alpha", 0.25), ("jm_kumo", 0.75))))
    expected = 0.25 * engine.style(VoiceBlend.single("jf_alpha")) + 0.75 * engine.style(VoiceBlend.single("jm_kumo"))
    np.testing.assert_allclose(mixed, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.engine
def test_speeds_beyond_kokoro_onnx_s_own_range(engine: KokoroEngine) -> None:
    def seconds(speed: float) -> float:
        return sum(c.duration for c in engine.stream(request("Good night.", speed=speed), threading.Event()))

    slow, normal, fast = seconds(0.25), seconds(1.0), seconds(3.0)
    assert slow > 2 * normal > 2 * fast
