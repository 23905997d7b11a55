"""The remote engine against Kokoro-FastAPI's documented shapes (respx: no such server runs here)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import respx
from fastapi.testclient import TestClient

from devkit.speech import kokoro_speech, words
from tests.tts_broker.conftest import PHRASE, Listener, tts_settings
from tts_broker.app import create_app
from tts_broker.engines.remote import parse_voice_list
from voicestack_common.audio import decode_audio

UPSTREAM = "http://kokoro.test:8081"
VOICES = {"voices": [{"id": v, "name": v} for v in ("af_alloy", "af_heart", "am_adam", "bm_george")]}


@pytest.fixture
def upstream() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=UPSTREAM, assert_all_called=False) as mock:
        mock.get("/health").respond(json={"status": "healthy"})
        mock.get("/v1/audio/voices").respond(json=VOICES)
        yield mock


@pytest.fixture
def client(upstream: respx.MockRouter, model_cache: Path) -> Iterator[TestClient]:
    settings = tts_settings(model_cache, engine="remote", remote_url=UPSTREAM, workers=2, cache_max_entries=0)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def pcm_stream(pcm: bytes, sizes: tuple[int, ...] = (4801, 9999, 3)) -> httpx.Response:
    """PCM16 as Kokoro-FastAPI streams it, cut at odd byte counts."""
    pieces, start = [], 0
    for size in sizes:
        pieces.append(pcm[start : start + size])
        start += size
    pieces.append(pcm[start:])
    return httpx.Response(200, content=iter(pieces), headers={"content-type": "audio/pcm"})


def test_voice_list_shapes() -> None:
    assert parse_voice_list(VOICES) == ("af_alloy", "af_heart", "am_adam", "bm_george")
    assert parse_voice_list({"voices": ["bf_emma", "af_sky"]}) == ("af_sky", "bf_emma")


def test_voices_come_from_the_server_and_af_heart_is_the_default(client: TestClient) -> None:
    body = client.get("/v1/voices").json()
    assert {k: body[k] for k in ("voices", "default_voice", "service")} == {
        "voices": ["af_alloy", "af_heart", "am_adam", "bm_george"],
        "default_voice": "af_heart",
        "service": "Kokoro TTS",
    }
    # The remote server has Kokoro's own text front ends: every language is available there.
    assert [(d["language"], d["gender"], d["available"]) for d in body["details"]] == [
        ("en-US", "female", True),
        ("en-US", "female", True),
        ("en-US", "male", True),
        ("en-GB", "male", True),
    ]
    checks = client.get("/readyz").json()["checks"]
    assert (checks["engine"], checks["upstream_reachable"], checks["default_voice_fallback"]) == (
        "kokoro-fastapi",
        True,
        False,
    )


def test_speech_streams_through_and_is_re_encoded(
    client: TestClient, upstream: respx.MockRouter, listener: Listener
) -> None:
    speech = kokoro_speech(PHRASE)
    route = upstream.post("/v1/audio/speech").mock(side_effect=lambda request: pcm_stream(speech.to_pcm16()))
    response = client.post(
        "/v1/audio/speech",
        json={"input": PHRASE, "voice": "af_heart(0.7)+am_adam(0.3)", "response_format": "mp3", "speed": 1.1},
    )
    assert response.status_code == 200
    assert decode_audio(response.content, 24_000).duration == pytest.approx(speech.duration, abs=0.1)
    assert listener.words(response.content) == words(PHRASE)
    sent = json.loads(route.calls.last.request.content)
    assert sent == {
        "model": "kokoro",
        "input": PHRASE,
        "voice": "af_heart(0.7)+am_adam(0.3)",
        "response_format": "pcm",
        "speed": 1.1,
        "stream": True,
        "lang_code": "a",
    }


def test_openai_names_map_to_the_server_s_voices(client: TestClient, upstream: respx.MockRouter) -> None:
    route = upstream.post("/v1/audio/speech").mock(side_effect=lambda request: pcm_stream(bytes(9600)))
    body = client.post("/v1/synthesize", json={"text": "Hi there.", "voice": "alloy"}).json()
    assert body["voice"] == "af_alloy"
    assert body["audio_duration_seconds"] == pytest.approx(0.2)
    assert json.loads(route.calls.last.request.content)["voice"] == "af_alloy"
    # echo's Kokoro voice (am_echo) is missing here, and so is jm_kumo: the default stands in.
    assert client.post("/v1/synthesize", json={"text": "Hi there.", "voice": "echo"}).json()["voice"] == "af_heart"


@pytest.mark.parametrize(
    ("upstream_response", "expected"),
    [
        (
            httpx.Response(400, json={"detail": {"error": "validation_error", "message": "Voice 'x' not found"}}),
            (502, "upstream_error"),
        ),
        (httpx.ConnectError("connection refused"), (502, "upstream_unavailable")),
        (httpx.ReadTimeout("read timed out"), (504, "upstream_timeout")),
    ],
)
def test_upstream_failures(
    client: TestClient,
    upstream: respx.MockRouter,
    upstream_response: httpx.Response | Exception,
    expected: tuple[int, str],
) -> None:
    upstream.post("/v1/audio/speech").mock(side_effect=[upstream_response])
    response = client.post("/v1/audio/speech", json={"input": "Hi there.", "voice": "af_heart"})
    assert (response.status_code, response.json()["error"]["code"]) == expected
    if expected[1] == "upstream_error":
        assert "Voice 'x' not found" in response.json()["error"]["message"]


def test_a_server_that_is_down_at_start_is_not_ready(model_cache: Path) -> None:
    with respx.mock(base_url=UPSTREAM, assert_all_called=False) as mock:
        mock.get("/health").mock(side_effect=httpx.ConnectError("refused"))
        mock.get("/v1/audio/voices").mock(side_effect=httpx.ConnectError("refused"))
        settings = tts_settings(model_cache, engine="remote", remote_url=UPSTREAM)
        with TestClient(create_app(settings)) as client:
            ready = client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["upstream_reachable"] is False
            assert client.get("/v1/voices").json()["error"]["code"] == "upstream_unavailable"
            # Once it is up, the broker uses it without a restart.
            mock.get("/health").mock(return_value=httpx.Response(200, json={"status": "healthy"}))
            mock.get("/v1/audio/voices").mock(return_value=httpx.Response(200, json=VOICES))
            assert client.get("/readyz").status_code == 200
