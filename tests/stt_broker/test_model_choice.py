"""Which model serves a request (``STT_MODEL=auto``, a named model) and the catalog's life, on real whisper.cpp."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from wyoming.asr import Transcribe, Transcript

from devkit.servers import free_port
from devkit.speech import espeak_speech, words
from devkit.wyoming_kit import audio_events, client, read_until, run, send_all
from stt_broker.app import create_app
from stt_broker.sizing import usable_cores
from tests.live.client import collect
from tests.stt_broker.conftest import stt_settings
from voicestack_common.audio import Pcm, decode_audio
from voicestack_common.encode import encode_audio

pytestmark = pytest.mark.engine

GERMAN = "Guten Morgen. Wir gehen heute in den Park."
# An idle non-default model is unloaded this soon (the defaults never are).
TTL = 0.3
SPARE = "tiny.en-q8_0"


@pytest.fixture(scope="module")
def broker(model_cache: Path) -> Iterator[TestClient]:
    """``STT_MODEL=auto`` over tiny.en, base and a spare model that idles out after ``TTL``; encoder
    contexts fitted to the clips and no temperature fallback, because base decodes are the slow
    part here; Wyoming on."""
    settings = stt_settings(
        model_cache,
        model="auto",
        models=["tiny.en", "base", SPARE],
        model_ttl=TTL,
        workers=1,
        threads=2,
        fit_audio_ctx=True,
        temperature_inc=0.0,
        wyoming_enabled=True,
        wyoming_port=free_port(),
    )
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture(scope="module")
def german() -> bytes:
    return espeak_speech(GERMAN, voice="de", speed=130)


def metric(client: TestClient, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    found = re.search(rf"^{name}\{{{wanted}\}} ([\d.e+]+)$", client.get("/metrics").text, re.M)
    return float(found.group(1)) if found else 0.0


def test_german_with_no_language_is_detected_by_the_multilingual_model(broker: TestClient, german: bytes) -> None:
    response = broker.post(
        "/v1/audio/transcriptions",
        files={"file": ("de.wav", german)},
        data={"model": "whisper-1", "response_format": "verbose_json"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["language"] == "german"
    heard = set(words(body["text"]))
    assert len(heard & set(words(GERMAN))) >= len(words(GERMAN)) // 2, body["text"]


def test_english_follows_the_rule_and_base_can_be_named(broker: TestClient, sentence: tuple[str, Pcm]) -> None:
    text, pcm = sentence
    wav = encode_audio(pcm, "wav")
    english = broker.post("/v1/transcribe", files={"file": ("a.wav", wav)}, data={"language": "en"}).json()
    assert english["model"] == ("tiny.en" if usable_cores() <= 4 else "base")
    assert words(english["text"]) == words(text)
    named = broker.post("/v1/transcribe", files={"file": ("a.wav", wav)}, data={"model": "base"}).json()
    assert (named["model"], named["language"]) == ("base", "en")
    assert words(named["text"]) == words(text)


def test_unknown_model_is_404_with_the_catalog(broker: TestClient, sentence: tuple[str, Pcm]) -> None:
    wav = encode_audio(sentence[1], "wav")
    response = broker.post("/v1/transcribe", files={"file": ("a.wav", wav)}, data={"model": "large-v9"})
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "model_not_found"
    assert f"tiny.en, base, {SPARE}" in error["message"]


def test_an_idle_model_unloads_and_comes_back_without_a_failed_request(
    broker: TestClient, sentence: tuple[str, Pcm]
) -> None:
    text, pcm = sentence
    wav = encode_audio(pcm, "wav")

    def post() -> dict[str, object]:
        response = broker.post("/v1/transcribe", files={"file": ("a.wav", wav)}, data={"model": SPARE})
        assert response.status_code == 200, response.text
        return dict(response.json())

    def loaded() -> bool:
        cards = {c["id"]: c for c in broker.get("/v1/models").json()["data"]}
        return bool(cards[SPARE]["loaded"])

    assert words(str(post()["text"])) == words(text)
    deadline = time.monotonic() + 10
    while loaded() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not loaded()
    assert metric(broker, "stt_model_unloads_total", model=SPARE, reason="idle") >= 1
    # Requests spaced about one TTL apart land while the model is unloading, unloaded or loading.
    with ThreadPoolExecutor(3) as pool:
        futures = []
        for index in range(4):
            futures.append(pool.submit(post))
            time.sleep(TTL * (0.8 + 0.2 * index))
        answers = [f.result() for f in futures]
    assert {a["model"] for a in answers} == {SPARE}
    assert all(words(str(a["text"])) == words(text) for a in answers)
    assert metric(broker, "stt_model_loads_total", model=SPARE) >= 2
    assert metric(broker, "stt_model_loads_total", model="tiny.en") == 1  # a default: never unloaded


def test_live_session_detects_the_language_and_holds_its_model(broker: TestClient, german: bytes) -> None:
    pcm = decode_audio(german).to_pcm16()
    with broker.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps({"type": "start", "format": "pcm16", "sample_rate": 16000, "partials": False}))
        ws.send_bytes(pcm)
        ws.send_text(json.dumps({"type": "stop"}))
        outcome = collect(ws)
    ready, *_ = outcome.events
    assert ready["model"] == "base"
    finals = [e for e in outcome.events if e["type"] == "final"]
    assert finals
    assert {f["language"] for f in finals} == {"de"}
    with broker.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps({"type": "start", "model": SPARE}))
        assert json.loads(ws.receive_text())["model"] == SPARE
        time.sleep(TTL * 4)  # idle far past the TTL, yet the session holds its model
        cards = {c["id"]: c for c in broker.get("/v1/models").json()["data"]}
        assert cards[SPARE]["loaded"] is True
        ws.send_text(json.dumps({"type": "stop"}))
        collect(ws)
    with broker.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps({"type": "start", "model": "large-v9"}))
        outcome = collect(ws)
    assert outcome.events[0]["error"]["code"] == "model_not_found"
    assert outcome.events[0]["fatal"] is True


def test_wyoming_detects_the_language_and_takes_a_model_by_name(
    broker: TestClient, german: bytes, sentence: tuple[str, Pcm]
) -> None:
    port = broker.app.state.settings.wyoming_port  # type: ignore[attr-defined]

    async def transcribe(request: Transcribe, pcm: Pcm) -> Transcript:
        async with client(port) as conn:
            await send_all(conn, [request.event(), *audio_events(pcm)])
            return Transcript.from_event((await read_until(conn, "transcript-stop"))[-2])

    heard = run(transcribe(Transcribe(), decode_audio(german)))
    assert heard.language == "de"
    english = run(transcribe(Transcribe(name="base", language="en"), sentence[1]))
    assert words(english.text) == words(sentence[0])
    assert metric(broker, "stt_wyoming_requests_total", kind="transcribe", outcome="ok") == 2
