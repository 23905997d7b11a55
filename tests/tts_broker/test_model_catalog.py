"""Kokoro models as a catalog (issue 20): a second model loads on first use, idles out and comes back,
is never unloaded under a synthesis, and unknown names are 404; on the real Kokoro engine."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from devkit.speech import words
from tests.tts_broker.conftest import PHRASE, THREE_SENTENCES, Listener, tts_settings
from tts_broker import cli
from tts_broker.app import create_app
from tts_broker.catalog import build_catalog
from tts_broker.engines.base import SpeechRequest, VoiceBlend
from tts_broker.models import BUNDLED_MODEL_ID, ModelError, assemble_bundled_model, resolve_voices
from tts_broker.settings import TtsSettings
from tts_broker.synthesizer import SpeechJob

pytestmark = pytest.mark.engine

# The only other Kokoro file offline is the bundled int8 model itself: placed in the cache under the
# name `models pull` gives kokoro-v1.0.int8.onnx, it is a second catalog model.
SPARE = "kokoro-v1.0.int8"
# An idle non-default model is unloaded this soon (the default never is).
TTL = 0.4


@pytest.fixture(scope="module")
def catalog_cache(model_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A cache with the bundled model and ``kokoro-v1.0.int8.onnx`` (links to the assembled file); and the voices."""
    bundled = assemble_bundled_model(model_cache)
    voices = resolve_voices(tts_settings(model_cache))
    cache = tmp_path_factory.mktemp("tts-catalog")
    (cache / "kokoro").mkdir()
    (cache / "kokoro" / bundled.name).symlink_to(bundled)
    (cache / "kokoro" / f"{SPARE}.onnx").symlink_to(bundled)
    return cache, voices


@pytest.fixture(scope="module")
def broker(catalog_cache: tuple[Path, Path]) -> Iterator[TestClient]:
    """The bundled model (the default) and the spare, which idles out after ``TTL``; no result cache."""
    cache, voices = catalog_cache
    settings = tts_settings(
        cache, voices_path=voices, models=[BUNDLED_MODEL_ID, SPARE], model_ttl=TTL, cache_max_entries=0
    )
    with TestClient(create_app(settings)) as client:
        yield client


def metric(client: TestClient, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    found = re.search(rf"^{name}\{{{wanted}\}} ([\d.e+]+)$", client.get("/metrics").text, re.M)
    return float(found.group(1)) if found else 0.0


def cards(client: TestClient) -> dict[str, dict[str, object]]:
    return {card["id"]: card for card in client.get("/v1/models").json()["data"]}


def speak(client: TestClient, model: str, text: str = PHRASE) -> bytes:
    response = client.post(
        "/v1/audio/speech", json={"model": model, "input": text, "voice": "af_heart", "response_format": "wav"}
    )
    assert response.status_code == 200, response.text
    return response.content


def test_the_catalog_is_listed_with_the_default_loaded(broker: TestClient) -> None:
    listed = cards(broker)
    default, spare = listed[BUNDLED_MODEL_ID], listed[SPARE]
    assert (default["kind"], default["loaded"], default["default"]) == ("tts", True, True)
    assert (spare["kind"], spare["loaded"], spare["default"]) == ("tts", False, False)
    assert spare["languages"] == default["languages"]
    assert "en" in default["languages"]  # type: ignore[operator]
    assert "zh" not in default["languages"]  # type: ignore[operator]  # Mandarin lacks its front end here
    for alias in ("tts-1", "tts-1-hd", "kokoro"):
        assert listed[alias]["alias_of"] == BUNDLED_MODEL_ID
    ready = broker.get("/readyz").json()
    assert ready["status"] == "ready", ready
    assert ready["checks"]["models_loaded"] == [BUNDLED_MODEL_ID]


def test_unknown_model_is_404_with_the_catalog(broker: TestClient) -> None:
    for path, body in (
        ("/v1/audio/speech", {"model": "kokoro-v9", "input": "Hello."}),
        ("/v1/synthesize", {"model": "kokoro-v9", "text": "Hello."}),
    ):
        response = broker.post(path, json=body)
        assert response.status_code == 404, response.text
        error = response.json()["error"]
        assert error["code"] == "model_not_found"
        assert f"{BUNDLED_MODEL_ID}, {SPARE}" in error["message"]


def test_a_named_model_loads_on_first_use_idles_out_and_comes_back(broker: TestClient, listener: Listener) -> None:
    assert listener.words(speak(broker, SPARE)) == words(PHRASE)
    assert metric(broker, "tts_model_loads_total", model=SPARE) >= 1
    deadline = time.monotonic() + 10
    while cards(broker)[SPARE]["loaded"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not cards(broker)[SPARE]["loaded"]
    assert metric(broker, "tts_model_unloads_total", model=SPARE, reason="idle") >= 1
    # Requests spaced about one TTL apart land while the model is unloading, unloaded or loading.
    with ThreadPoolExecutor(3) as pool:
        futures = []
        for index in range(4):
            futures.append(pool.submit(speak, broker, SPARE, "Thank you very much."))
            time.sleep(TTL * (0.8 + 0.2 * index))
        answers = [f.result() for f in futures]
    assert all(listener.words(a) == words("Thank you very much.") for a in answers)
    assert metric(broker, "tts_model_loads_total", model=SPARE) >= 2
    # The guide's route takes the model too; the aliases and no model at all mean the default.
    named = broker.post("/v1/synthesize", json={"text": "Hello.", "model": SPARE})
    assert named.status_code == 200, named.text
    for model in ("tts-1", "kokoro"):
        assert listener.words(speak(broker, model)) == words(PHRASE)
    assert broker.post("/v1/synthesize", json={"text": "Hello."}).status_code == 200
    assert metric(broker, "tts_model_loads_total", model=BUNDLED_MODEL_ID) == 1  # the default: never unloaded
    assert metric(broker, "tts_model_unloads_total", model=BUNDLED_MODEL_ID, reason="idle") == 0


def test_a_model_with_a_synthesis_in_progress_is_not_unloaded(broker: TestClient, listener: Listener) -> None:
    text = f"{THREE_SENTENCES} {THREE_SENTENCES}"  # several seconds of synthesis: many TTLs
    unloads_before = metric(broker, "tts_model_unloads_total", model=SPARE, reason="idle")
    done = threading.Event()
    seen: list[bool] = []

    def watch() -> None:
        while not done.is_set():
            seen.append(bool(cards(broker)[SPARE]["loaded"]))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    started = time.monotonic()
    with broker.stream(
        "POST", "/v1/audio/speech", json={"model": SPARE, "input": text, "voice": "af_heart", "response_format": "pcm"}
    ) as response:
        assert response.status_code == 200
        watcher.start()
        audio = b"".join(response.iter_bytes())
    done.set()
    watcher.join()
    assert time.monotonic() - started > 4 * TTL  # long enough that an idle model would have gone
    assert seen
    assert all(seen), seen
    assert metric(broker, "tts_model_unloads_total", model=SPARE, reason="idle") == unloads_before
    assert listener.words(audio, "pcm") == words(text)


def test_the_cache_key_tells_models_apart() -> None:
    request = SpeechRequest("Hello.", VoiceBlend.single("af_heart"), "a", 1.0)
    assert SpeechJob(request, "mp3", BUNDLED_MODEL_ID).key != SpeechJob(request, "mp3", SPARE).key


def test_catalog_settings(catalog_cache: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache, voices = catalog_cache
    monkeypatch.setenv("TTS_MODELS", f"{SPARE}.onnx, {BUNDLED_MODEL_ID}")
    settings = TtsSettings(_env_file=None, cache_dir=cache, voices_path=voices)  # type: ignore[call-arg]
    assert settings.models == [SPARE, BUNDLED_MODEL_ID]
    catalog = build_catalog(settings)
    assert ([e.id for e in catalog.entries], catalog.default) == ([SPARE, BUNDLED_MODEL_ID], SPARE)
    assert all(e.memory_bytes > 80_000_000 for e in catalog.entries)
    monkeypatch.delenv("TTS_MODELS")
    assert TtsSettings(_env_file=None).models == [BUNDLED_MODEL_ID]  # type: ignore[call-arg]
    named = tts_settings(cache, voices_path=voices, models=[BUNDLED_MODEL_ID, SPARE], model=SPARE)
    assert build_catalog(named).default == SPARE
    with pytest.raises(ModelError, match=re.escape("tts-broker models pull kokoro-v1.0.onnx")):
        build_catalog(tts_settings(cache, voices_path=voices, models=[BUNDLED_MODEL_ID, "kokoro-v1.0"]))
    with pytest.raises(ModelError, match=re.escape("TTS_MODEL 'kokoro-v9' is not in the catalog")):
        build_catalog(tts_settings(cache, voices_path=voices, model="kokoro-v9"))
    # A configured file joins the catalog first, as the default.
    model = tmp_path / "my-kokoro.onnx"
    model.write_bytes(b"x")
    configured = build_catalog(tts_settings(cache, model_path=model, voices_path=voices))
    assert ([e.id for e in configured.entries], configured.default) == (["my-kokoro", BUNDLED_MODEL_ID], "my-kokoro")
    remote = build_catalog(tts_settings(cache, engine="remote", models=[BUNDLED_MODEL_ID, SPARE]))
    assert ([e.id for e in remote.entries], remote.default) == (["kokoro"], "kokoro")


def test_cli_lists_the_catalog_and_what_a_broker_has_loaded(
    catalog_cache: tuple[Path, Path], tts_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache, _ = catalog_cache
    monkeypatch.setenv("TTS_CACHE_DIR", str(cache))
    monkeypatch.setenv("TTS_MODELS", f"{BUNDLED_MODEL_ID},{SPARE},kokoro-v1.0")
    runner = CliRunner()
    listed = runner.invoke(cli.app, ["models", "list", "--url", tts_server])
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert re.search(rf"^catalog: {BUNDLED_MODEL_ID} +loaded$", listed.output, re.M), lines
    assert re.search(rf"^catalog: {SPARE} +in the cache$", listed.output, re.M), lines
    assert "catalog: kokoro-v1.0 " in listed.output
    assert "tts-broker models pull kokoro-v1.0.onnx" in listed.output
    assert f"default: {BUNDLED_MODEL_ID}" in lines
    offline = runner.invoke(cli.app, ["models", "list", "--url", "http://127.0.0.1:9"])
    assert re.search(rf"^catalog: {BUNDLED_MODEL_ID} +bundled$", offline.output, re.M), offline.output
