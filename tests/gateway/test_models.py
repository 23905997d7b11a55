"""``GET /v1/models`` on the gateway, and the ``model`` field of each route reaching its broker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.responses import JSONResponse, Response

from devkit.servers import free_port, serve
from devkit.speech import words
from gateway.app import create_app
from tests.gateway.conftest import FakeBroker, gateway_settings
from voicestack_common.audio import Pcm
from voicestack_common.encode import encode_audio

STT_CARDS = [
    {"id": "tiny.en", "object": "model", "created": 1, "owned_by": "voicestack/whispercpp", "kind": "stt",
     "loaded": True, "default": True, "languages": ["en"]},
    {"id": "base", "object": "model", "created": 1, "owned_by": "voicestack/whispercpp", "kind": "stt",
     "loaded": False, "default": False, "languages": ["en", "es", "fr"]},
    {"id": "whisper-1", "object": "model", "created": 1, "owned_by": "voicestack/whispercpp", "alias_of": "tiny.en"},
]  # fmt: skip
TTS_CARDS = [{"id": "kokoro", "object": "model", "created": 1, "owned_by": "voicestack/kokoro", "loaded": True}]


def ids(listing: dict[str, Any]) -> list[str]:
    return [card["id"] for card in listing["data"]]


def fake_models(cards: list[dict[str, Any]]) -> Any:
    def answer(path: str, body: bytes) -> Response:
        if path == "/v1/models":
            return JSONResponse({"object": "list", "data": cards})
        return JSONResponse({"error": {"code": "model_not_found", "message": "no model 'nope'"}}, status_code=404)

    return answer


@pytest.fixture
def fake_gateway(fake_brokers: tuple[FakeBroker, str, FakeBroker, str]) -> Iterator[tuple[FakeBroker, FakeBroker, str]]:
    stt, stt_base, tts, tts_base = fake_brokers
    with serve(create_app(gateway_settings(stt_urls=stt_base, tts_urls=tts_base))) as url:
        yield stt, tts, url


def test_models_of_both_brokers_in_one_list(fake_gateway: tuple[FakeBroker, FakeBroker, str]) -> None:
    stt, tts, url = fake_gateway
    stt.answer, tts.answer = fake_models(STT_CARDS), fake_models(TTS_CARDS)
    listing = httpx.get(f"{url}/v1/models").json()
    assert listing["object"] == "list"
    assert ids(listing) == ["tiny.en", "base", "whisper-1", "kokoro"]
    cards = {card["id"]: card for card in listing["data"]}
    assert cards["base"] == STT_CARDS[1]
    # a broker that does not say what its cards are: the gateway knows which broker it asked
    assert cards["whisper-1"]["kind"] == "stt"
    assert cards["whisper-1"]["alias_of"] == "tiny.en"
    assert cards["kokoro"]["kind"] == "tts"
    assert "languages" not in cards["kokoro"]  # unknown stays out, as OpenAI's shape has it
    one = httpx.get(f"{url}/v1/models/base")
    assert one.status_code == 200
    assert one.json() == STT_CARDS[1]
    missing = httpx.get(f"{url}/v1/models/nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "model_not_found"


def test_a_broker_down_leaves_its_models_out(fake_brokers: tuple[FakeBroker, str, FakeBroker, str]) -> None:
    _, _, tts, tts_base = fake_brokers
    tts.answer = fake_models(TTS_CARDS)
    nowhere = f"http://127.0.0.1:{free_port()}"
    with serve(create_app(gateway_settings(stt_urls=nowhere, tts_urls=tts_base)), ready_path="/healthz") as url:
        answer = httpx.get(f"{url}/v1/models")
    assert answer.status_code == 200
    assert ids(answer.json()) == ["kokoro"]


def test_a_broker_answering_nonsense_leaves_its_models_out(fake_gateway: tuple[FakeBroker, FakeBroker, str]) -> None:
    stt, tts, url = fake_gateway
    stt.answer = lambda path, body: JSONResponse({"data": "not a list"})
    tts.answer = fake_models(TTS_CARDS)
    answer = httpx.get(f"{url}/v1/models")
    assert answer.status_code == 200
    assert ids(answer.json()) == ["kokoro"]


def test_model_field_reaches_the_stt_broker(fake_gateway: tuple[FakeBroker, FakeBroker, str]) -> None:
    stt, _, url = fake_gateway
    guide = httpx.post(
        f"{url}/api/voice/transcribe", files={"file": ("a.wav", b"RIFF", "audio/wav")}, data={"model": "base"}
    )
    assert guide.status_code == 200
    as_json = httpx.post(f"{url}/api/voice/transcribe", json={"audio_base64": "UklGRg==", "model": "base-q5_1"})
    assert as_json.status_code == 200
    sent = [r["body"] for r in stt.requests if r["path"] == "/v1/transcribe"]
    assert b'name="model"\r\n\r\nbase\r\n' in sent[0]
    assert b'name="model"\r\n\r\nbase-q5_1\r\n' in sent[1]
    # nothing named: nothing sent, so the broker's default holds
    httpx.post(f"{url}/api/voice/transcribe", files={"file": ("a.wav", b"RIFF", "audio/wav")})
    assert b'name="model"' not in [r["body"] for r in stt.requests if r["path"] == "/v1/transcribe"][2]


def test_unknown_model_passes_the_brokers_error(fake_gateway: tuple[FakeBroker, FakeBroker, str]) -> None:
    stt, tts, url = fake_gateway
    stt.answer = tts.answer = fake_models([])
    guide = httpx.post(
        f"{url}/api/voice/transcribe", files={"file": ("a.wav", b"RIFF", "audio/wav")}, data={"model": "nope"}
    )
    openai = httpx.post(
        f"{url}/v1/audio/transcriptions", files={"file": ("a.wav", b"RIFF", "audio/wav")}, data={"model": "nope"}
    )
    speech = httpx.post(f"{url}/v1/audio/speech", json={"model": "nope", "input": "Hi.", "voice": "af_heart"})
    for answer in (guide, openai, speech):
        assert answer.status_code == 404, answer.text
        assert answer.json()["error"]["code"] == "model_not_found"
    assert json.loads(next(r["body"] for r in tts.requests if r["path"] == "/v1/audio/speech"))["model"] == "nope"


# ---------------------------------------------------------------- the real brokers


@pytest.mark.engine
def test_real_models_list_is_what_the_brokers_say(gateway_url: str, stt_url: str, tts_url: str) -> None:
    stt = httpx.get(f"{stt_url}/v1/models").json()["data"]
    tts = httpx.get(f"{tts_url}/v1/models").json()["data"]
    listing = httpx.get(f"{gateway_url}/v1/models").json()
    cards = {card["id"]: card for card in listing["data"]}
    assert ids(listing) == list(dict.fromkeys([c["id"] for c in stt] + [c["id"] for c in tts]))
    for card in stt:
        assert cards[card["id"]]["kind"] == "stt"
        assert {k: v for k, v in cards[card["id"]].items() if k != "kind"} == {
            k: v for k, v in card.items() if v is not None and k != "kind"
        }
    for card in tts:
        assert cards[card["id"]]["kind"] in ("tts", "stt")  # a name both brokers use is listed once, STT first
    # issue 20's catalog: both Whisper models and Kokoro
    assert {"tiny.en", "base"} <= {c["id"] for c in stt}
    assert cards["whisper-1"].get("alias_of")
    assert any(c["kind"] == "tts" for c in cards.values())
    assert sum(1 for c in cards.values() if c["kind"] == "stt" and c.get("default")) == 1


@pytest.mark.engine
@pytest.mark.slow
def test_choosing_base_transcribes_english(gateway_url: str, sentence: tuple[str, Pcm]) -> None:
    wav = encode_audio(sentence[1], "wav")
    answer = httpx.post(
        f"{gateway_url}/api/voice/transcribe",
        files={"file": ("a.wav", wav, "audio/wav")},
        data={"model": "base", "language": "en"},
        timeout=300,
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert "base" in body["model"]
    assert words(body["text"]) == words(sentence[0])


# ---------------------------------------------------------------- the CLI

DETAILS = [
    {"id": "af_heart", "lang_code": "a", "language": "en-US", "language_name": "American English", "gender": "female"},
    {"id": "em_alex", "lang_code": "e", "language": "es", "language_name": "Spanish", "gender": "male"},
    {
        "id": "zf_xiaobei",
        "lang_code": "z",
        "language": "zh",
        "language_name": "Mandarin Chinese",
        "gender": "female",
        "available": False,
        "reason": "misaki[zh] is not installed",
    },
]
VOICES = {
    "voices": [d["id"] for d in DETAILS],
    "default_voice": "af_heart",
    "service": "Kokoro TTS",
    "details": DETAILS,
}


def test_voices_pass_their_details_and_the_cli_shows_them(fake_gateway: tuple[FakeBroker, FakeBroker, str]) -> None:
    from typer.testing import CliRunner

    from voicestack.cli import app as cli

    _, tts, url = fake_gateway
    tts.answer = lambda path, body: JSONResponse(VOICES)
    answer = httpx.get(f"{url}/api/voice/voices").json()
    assert answer["details"] == [{"available": True, "reason": None, **d} for d in DETAILS]
    result = CliRunner().invoke(cli, ["voices", "--url", url], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.output.splitlines() if line.strip()[:3] in ("af_", "em_", "zf_")}
    assert "en-US American English" in rows["af_heart"]
    assert "female" in rows["af_heart"]
    assert "default" in rows["af_heart"]
    assert "Spanish" in rows["em_alex"]
    assert "male" in rows["em_alex"]
    assert "unavailable: misaki[zh] is not installed" in rows["zf_xiaobei"]


def test_cli_models_list_shows_what_the_gateway_serves(fake_gateway: tuple[FakeBroker, FakeBroker, str]) -> None:
    from typer.testing import CliRunner

    from voicestack.cli import app as cli
    from voicestack.tables import models_table

    stt, tts, url = fake_gateway
    stt.answer, tts.answer = fake_models(STT_CARDS), fake_models(TTS_CARDS)
    result = CliRunner().invoke(cli, ["models", "list", "--url", url], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    served = result.output.split("served by the gateway")[1]
    rows = {line.split()[0]: line.split() for line in served.splitlines()[1:] if line.strip()}
    assert rows["tiny.en"][1:4] == ["stt", "yes", "yes"]
    assert rows["base"][1:3] == ["stt", "no"]
    assert rows["whisper-1"][1:3] == ["→", "tiny.en"]
    assert rows["kokoro"][1:3] == ["tts", "yes"]
    assert models_table([]).row_count == 0
    down = CliRunner().invoke(cli, ["models", "list", "--url", f"http://127.0.0.1:{free_port()}"])
    assert down.exit_code == 0, down.output  # what is prepared is still listed
    assert "cannot reach the gateway" in down.output
