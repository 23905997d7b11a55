"""Both local engines on the bundled model, and the remote engine against whisper.cpp server's shapes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import respx
from fastapi.testclient import TestClient

from devkit.speech import words
from stt_broker.app import create_app
from stt_broker.engines import whispercpp_params
from stt_broker.engines.base import Segment, TranscribeOptions
from stt_broker.engines.faster_whisper import FasterWhisperEngine
from stt_broker.engines.remote import RemoteWhisperCppEngine
from stt_broker.engines.whispercpp import WhisperCppEngine, fitted_audio_ctx
from stt_broker.models import bundled_ct2_dir, prepare_bundled_ggml
from tests.stt_broker.conftest import stt_settings
from voicestack_common.audio import Pcm, resample
from voicestack_common.encode import encode_audio
from voicestack_common.errors import UpstreamError, UpstreamTimeout

REMOTE = "http://whisper-server.test:8082"


@pytest.mark.engine
@pytest.mark.parametrize("backend", ["whispercpp", "faster-whisper"])
def test_local_engines_transcribe_and_report_segments_as_decoded(
    backend: str, model_cache: Path, two_sentences: tuple[str, Pcm]
) -> None:
    engine = (
        WhisperCppEngine(prepare_bundled_ggml(model_cache))
        if backend == "whispercpp"
        else FasterWhisperEngine(bundled_ct2_dir(), model_id="tiny.en")
    )
    engine.load()
    try:
        seen: list[Segment] = []
        audio = resample(two_sentences[1], 16_000)
        result = engine.transcribe(audio, TranscribeOptions(word_timestamps=True), on_segment=seen.append)
    finally:
        engine.close()
    assert words(result.text) == words(two_sentences[0])
    assert result.language == "en"
    assert [s.text for s in seen] == [s.text for s in result.segments]
    # whisper.cpp splits these two sentences in two; faster-whisper may keep them in one segment,
    # depending on the CPU kernels CTranslate2 picks: the contract is that each decoded segment is reported.
    assert len(result.segments) >= (2 if backend == "whispercpp" else 1)
    assert [w for s in result.segments for word in s.words for w in words(word.word)] == words(two_sentences[0])
    assert engine.model == "tiny.en"
    assert not engine.multilingual


def test_a_fitted_context_covers_the_audio_plus_padding_up_to_the_full_window() -> None:
    assert fitted_audio_ctx(0.5) == 25 + 256
    assert fitted_audio_ctx(4.0) == 200 + 256
    assert fitted_audio_ctx(24.0) == 1456
    assert fitted_audio_ctx(25.0) == fitted_audio_ctx(90.0) == 1500


@pytest.mark.engine
def test_a_fitted_encoder_context_hears_the_same_and_lasts_one_call(
    model_cache: Path, two_sentences: tuple[str, Pcm]
) -> None:
    """Live partials decode with ``fit_context``; pywhispercpp keeps parameters between calls, so the
    next call must get the full window back."""
    engine = WhisperCppEngine(prepare_bundled_ggml(model_cache))
    engine.load()
    audio = resample(two_sentences[1], 16_000)
    try:
        fitted = engine.transcribe(audio, TranscribeOptions(fit_context=True))
        fitted_ctx = engine._model._params.audio_ctx
        full = engine.transcribe(audio, TranscribeOptions())
        full_ctx = engine._model._params.audio_ctx
    finally:
        engine.close()
    assert words(fitted.text) == words(full.text) == words(two_sentences[0])
    assert fitted_ctx == fitted_audio_ctx(audio.duration) < 1500
    assert full_ctx == 0  # whisper.cpp's default: the model's whole window


@pytest.mark.engine
def test_stt_fit_audio_ctx_fits_every_decode(model_cache: Path, sentence: tuple[str, Pcm]) -> None:
    settings = stt_settings(model_cache, fit_audio_ctx=True)
    engine = WhisperCppEngine(prepare_bundled_ggml(model_cache), params=whispercpp_params(settings))
    engine.load()
    audio = resample(sentence[1], 16_000)
    try:
        result = engine.transcribe(audio, TranscribeOptions())
        assert engine._model._params.audio_ctx == fitted_audio_ctx(audio.duration)
    finally:
        engine.close()
    assert words(result.text) == words(sentence[0])


@pytest.mark.engine
def test_cancel_aborts_a_whisper_cpp_decode(model_cache: Path, two_sentences: tuple[str, Pcm]) -> None:
    engine = WhisperCppEngine(prepare_bundled_ggml(model_cache))
    engine.load()
    cancel = threading.Event()
    cancel.set()
    try:
        result = engine.transcribe(resample(two_sentences[1], 16_000), TranscribeOptions(), cancel=cancel)
    finally:
        engine.close()
    assert result.text == ""


@pytest.mark.engine
def test_faster_whisper_engine_serves_the_api(model_cache: Path, sentence: tuple[str, Pcm]) -> None:
    with TestClient(create_app(stt_settings(model_cache, engine="faster-whisper"))) as client:
        body = client.post("/v1/transcribe", files={"file": ("a.flac", encode_audio(sentence[1], "flac"))}).json()
        assert client.get("/readyz").json()["checks"]["engine"] == "faster-whisper"
    assert words(body["text"]) == words(sentence[0])
    assert body["model"] == "tiny.en"


# whisper.cpp server v1.8's verbose_json answer, trimmed to one segment.
VERBOSE = {
    "task": "transcribe",
    "language": "english",
    "duration": 2.5,
    "text": " Hello world.",
    "segments": [
        {
            "id": 0,
            "text": " Hello world.",
            "start": 0.0,
            "end": 2.5,
            "tokens": [50363, 2425, 995, 13],
            "words": [
                {"word": "[_BEG_]", "start": 0.0, "end": 0.0, "t_dtw": -1, "probability": 0.9},
                {"word": " Hello", "start": 0.1, "end": 0.6, "t_dtw": -1, "probability": 0.95},
                {"word": " world", "start": 0.7, "end": 1.2, "t_dtw": -1, "probability": 0.9},
                {"word": ".", "start": 1.2, "end": 1.3, "t_dtw": -1, "probability": 0.8},
            ],
            "temperature": 0.0,
            "avg_logprob": -0.2,
            "no_speech_prob": 0.01,
        }
    ],
}


@pytest.fixture
def remote() -> Iterator[RemoteWhisperCppEngine]:
    engine = RemoteWhisperCppEngine(REMOTE, timeout=2)
    engine.load()
    yield engine
    engine.close()


def one_second() -> Pcm:
    import numpy as np

    return Pcm(np.zeros(16_000, np.float32), 16_000)


@respx.mock(assert_all_called=True)
def test_remote_engine_sends_wav_and_reads_verbose_json(
    remote: RemoteWhisperCppEngine, respx_mock: respx.MockRouter
) -> None:
    route = respx_mock.post(f"{REMOTE}/inference").respond(json=VERBOSE)
    result = remote.transcribe(one_second(), TranscribeOptions(language="en", prompt="Greeting.", word_timestamps=True))
    request = route.calls.last.request
    body = request.content
    assert b'name="response_format"\r\n\r\nverbose_json' in body
    assert b'name="language"\r\n\r\nen' in body
    assert b'name="prompt"\r\n\r\nGreeting.' in body
    assert b'filename="audio.wav"' in body
    assert b"RIFF" in body
    assert result.text == "Hello world."
    assert result.language == "en"
    assert [(w.word, w.start) for w in result.segments[0].words] == [("Hello", 0.1), ("world.", 0.7)]


@respx.mock
def test_remote_engine_error_answers(remote: RemoteWhisperCppEngine, respx_mock: respx.MockRouter) -> None:
    route = respx_mock.post(f"{REMOTE}/inference")
    route.respond(json={"error": "failed to read audio data"})  # the server's 200-with-error form
    with pytest.raises(UpstreamError, match="failed to read audio data"):
        remote.transcribe(one_second(), TranscribeOptions())
    route.respond(400, text="Invalid request")
    with pytest.raises(UpstreamError, match="400"):
        remote.transcribe(one_second(), TranscribeOptions())
    route.side_effect = httpx.ConnectError("refused")
    with pytest.raises(UpstreamError) as info:
        remote.transcribe(one_second(), TranscribeOptions())
    assert info.value.code == "upstream_unavailable"
    route.side_effect = httpx.ReadTimeout("slow")
    with pytest.raises(UpstreamTimeout):
        remote.transcribe(one_second(), TranscribeOptions())


@pytest.mark.engine
@respx.mock
def test_broker_on_the_remote_engine(
    model_cache: Path, sentence: tuple[str, Pcm], respx_mock: respx.MockRouter
) -> None:
    respx_mock.route(host="testserver").pass_through()
    respx_mock.get(f"{REMOTE}/").respond(200, text="<html>whisper.cpp server</html>")
    respx_mock.post(f"{REMOTE}/inference").respond(json=VERBOSE)
    settings = stt_settings(model_cache, engine="remote", remote_url=REMOTE)
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").json()["checks"]["upstream_reachable"] is True
        body = client.post("/v1/transcribe", files={"file": ("a.wav", encode_audio(sentence[1], "wav"))}).json()
        assert body["text"] == "Hello world."
        respx_mock.post(f"{REMOTE}/inference").mock(side_effect=httpx.ConnectError("refused"))
        failed = client.post("/v1/transcribe", files={"file": ("a.wav", encode_audio(sentence[1], "wav"))})
        assert failed.status_code == 502
        assert failed.json()["error"]["code"] == "upstream_unavailable"
        respx_mock.get(f"{REMOTE}/").mock(side_effect=httpx.ConnectError("refused"))
        assert client.get("/readyz").status_code == 503
        assert client.get("/healthz").status_code == 200
