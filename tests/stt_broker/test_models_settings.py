"""Model resolution, the one-time conversion cache, downloads, and settings from the environment."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from stt_broker.models import ModelError, download_ggml, prepare_bundled_ggml, resolve_model
from stt_broker.settings import SttSettings
from tests.stt_broker.conftest import stt_settings
from tts_broker.settings import TtsSettings


def test_bundled_model_is_converted_once_and_reused(tmp_path: Path) -> None:
    first = prepare_bundled_ggml(tmp_path)
    stamp = first.stat().st_mtime_ns
    again = prepare_bundled_ggml(tmp_path)
    assert again == first
    assert again.stat().st_mtime_ns == stamp
    assert first.read_bytes()[:4] == (0x67676D6C).to_bytes(4, "little")
    assert [p.name for p in first.parent.iterdir() if p.suffix == ".part"] == []


def test_resolve_model_per_engine(model_cache: Path, tmp_path: Path) -> None:
    default = resolve_model(stt_settings(model_cache))
    assert default.model_id == "tiny.en"
    assert default.path.name == "ggml-tiny.en.bin"
    ct2 = resolve_model(stt_settings(model_cache, engine="faster-whisper"))
    assert (ct2.path / "model.bin").is_file()
    assert ct2.model_id == "tiny.en"
    custom = tmp_path / "ggml-large-v3-turbo-q5_0.bin"
    custom.write_bytes(b"x")
    assert resolve_model(stt_settings(model_cache, model_path=custom)).model_id == "large-v3-turbo-q5_0"
    with pytest.raises(ModelError, match="directory"):
        resolve_model(stt_settings(model_cache, model_path=tmp_path))


def test_missing_model_path_fails_at_start(model_cache: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        stt_settings(model_cache, model_path=Path("/nonexistent/ggml-base.en.bin"))


def test_download_writes_atomically_and_reports_progress(tmp_path: Path) -> None:
    payload = b"ggml" + bytes(3 << 20)

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path.endswith("/ggml-base.en.bin")
        return httpx.Response(200, content=payload, headers={"content-length": str(len(payload))})

    seen: list[tuple[int, int | None]] = []
    path = download_ggml(
        "base.en", tmp_path, progress=lambda d, t: seen.append((d, t)), transport=httpx.MockTransport(handler)
    )
    assert path.read_bytes() == payload
    assert seen[-1] == (len(payload), len(payload))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ggml-base.en.bin"]


def test_download_without_internet_says_so(tmp_path: Path) -> None:
    def offline(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Name or service not known")

    with pytest.raises(ModelError, match="no internet access"):
        download_ggml("base.en", tmp_path, transport=httpx.MockTransport(offline))
    assert list(tmp_path.iterdir()) == []  # no partial file left behind
    with pytest.raises(ModelError, match="unknown model"):
        download_ggml("huge-v9", tmp_path)


def test_guide_variable_names_still_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SST_BROKER_PORT", "9999")
    monkeypatch.setenv("SST_BROKER_HOST", "0.0.0.0")
    monkeypatch.setenv("SST_BROKER_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("REMOTE_SST_URL", "http://gpu-box:8082")
    settings = SttSettings(_env_file=None)  # type: ignore[call-arg]
    assert (settings.port, settings.host, settings.log_level, settings.remote_url) == (
        9999,
        "0.0.0.0",
        "DEBUG",
        "http://gpu-box:8082",
    )
    # The STT_* spelling is primary and wins when both are set.
    monkeypatch.setenv("STT_PORT", "9100")
    assert SttSettings(_env_file=None).port == 9100  # type: ignore[call-arg]


def test_settings_read_prefixed_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STT_WORKERS", "3")
    monkeypatch.setenv("STT_ENGINE", "faster-whisper")
    monkeypatch.setenv("STT_VAD", "false")
    settings = SttSettings(_env_file=None)  # type: ignore[call-arg]
    assert (settings.workers, settings.engine, settings.vad) == (3, "faster-whisper", False)
    monkeypatch.setenv("STT_ENGINE", "openvino")
    with pytest.raises(ValueError, match="engine"):
        SttSettings(_env_file=None)  # type: ignore[call-arg]


def test_cache_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("STT_CACHE_DIR", raising=False)
    assert SttSettings(_env_file=None).cache_dir == tmp_path / "voicestack"  # type: ignore[call-arg]
    assert os.environ["XDG_CACHE_HOME"] == str(tmp_path)


@pytest.mark.parametrize(
    ("settings_class", "prefix", "legacy", "port"),
    [(SttSettings, "STT", "SST", 8082), (TtsSettings, "TTS", "TTS", 8081)],
)
def test_a_remote_server_is_used_or_refused_never_ignored(
    monkeypatch: pytest.MonkeyPatch,
    settings_class: type[SttSettings | TtsSettings],
    prefix: str,
    legacy: str,
    port: int,
) -> None:
    for name in (f"{prefix}_ENGINE", f"{prefix}_REMOTE_URL", f"REMOTE_{legacy}_URL"):
        monkeypatch.delenv(name, raising=False)
    local = settings_class(_env_file=None)  # type: ignore[call-arg]
    assert local.engine != "remote"
    assert local.remote_server == f"http://localhost:{port}"
    # The integration guide's host and port name a server: it is used.
    monkeypatch.setenv(f"REMOTE_{legacy}_HOST", "gpu-box")
    monkeypatch.setenv(f"REMOTE_{legacy}_PORT", "9000")
    remote = settings_class(_env_file=None)  # type: ignore[call-arg]
    assert (remote.engine, remote.remote_server) == ("remote", "http://gpu-box:9000")
    # A local engine named as well is a contradiction: refused at start, with what to do.
    monkeypatch.setenv(f"{prefix}_ENGINE", local.engine)
    with pytest.raises(ValueError, match=f"set {prefix}_ENGINE=remote to use it"):
        settings_class(_env_file=None)  # type: ignore[call-arg]
    monkeypatch.delenv(f"REMOTE_{legacy}_HOST")
    monkeypatch.delenv(f"REMOTE_{legacy}_PORT")
    # The brokers' --remote-host/--remote-port arrive as overrides.
    monkeypatch.delenv(f"{prefix}_ENGINE")
    flagged = settings_class(_env_file=None, remote_host="10.0.0.5")  # type: ignore[call-arg]
    assert (flagged.engine, flagged.remote_server) == ("remote", f"http://10.0.0.5:{port}")


def test_the_catalog_and_the_auto_rule(model_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stt_broker.catalog import build_catalog, estimate_bytes

    monkeypatch.setenv("STT_MODELS", "tiny.en, base, base-q5_1")
    entries, choice = build_catalog(stt_settings(model_cache, model="auto", auto_english_max_cores=64))
    assert [(e.id, e.languages) for e in entries] == [("tiny.en", ("en",)), ("base", None), ("base-q5_1", None)]
    assert (choice.pick("en"), choice.pick(None), choice.pick("de")) == ("tiny.en", "base", "base")
    assert choice.defaults == ["tiny.en", "base"]
    for rule_off in ({"auto_english_max_cores": 0}, {"auto_english_max_cores": 64, "use_gpu": True}):
        _, choice = build_catalog(stt_settings(model_cache, model="auto", **rule_off))
        assert (choice.pick("en"), choice.defaults) == ("base", ["base"])
    _, fixed = build_catalog(stt_settings(model_cache, model="base"))
    assert (fixed.pick("en"), fixed.pick(None), fixed.defaults) == ("base", "base", ["base"])
    quantized = stt_settings(model_cache, models=["tiny.en", "base"], quantization="q5_1", model="tiny.en")
    assert quantized.catalog_ids() == ["tiny.en-q5_1", "base-q5_1"]
    assert estimate_bytes(quantized, "base-q5_1") < estimate_bytes(quantized, "base") > 100 * 2**20
    with pytest.raises(ValueError, match="STT_MODEL 'small' is not in STT_MODELS"):
        stt_settings(model_cache, model="small")
    with pytest.raises(ModelError, match="models pull large-v3"):
        build_catalog(stt_settings(model_cache, models=["tiny.en", "large-v3"]))
