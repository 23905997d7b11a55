"""The end-of-turn model's file: taken out of the pinned pipecat-ai wheel once, refused when it does not match."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import pytest

from devkit.speech import REPO
from stt_broker.live.turn import (
    TURN_MODEL_SHA256,
    TURN_WHEEL,
    TURN_WHEEL_SHA256,
    TurnModelError,
    load_turn_model,
    prepare_turn_model,
    wheel_places,
)
from stt_broker.settings import SttSettings


@pytest.fixture
def wheel(model_cache: Path) -> Path:
    """The pipecat-ai wheel that scripts/bootstrap.sh fetched (the test command runs it first)."""
    found = next((path for path in wheel_places(model_cache) if path.is_file()), None)
    assert found is not None, f"run scripts/bootstrap.sh: it fetches {TURN_WHEEL} into the cache"
    return found


def test_the_model_is_taken_out_of_the_wheel_once(wheel: Path, tmp_path: Path) -> None:
    (tmp_path / "packages").mkdir()
    shutil.copyfile(wheel, tmp_path / "packages" / TURN_WHEEL)
    path = prepare_turn_model(tmp_path)
    assert path.stat().st_size > 8_000_000
    (tmp_path / "packages" / TURN_WHEEL).unlink()
    assert prepare_turn_model(tmp_path) == path  # the wheel is not needed again


def test_a_wheel_that_does_not_match_its_sha256_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "elsewhere"))  # not the machine's own cache
    cache = tmp_path / "cache"
    (cache / "packages").mkdir(parents=True)
    (cache / "packages" / TURN_WHEEL).write_bytes(b"not a wheel")
    with pytest.raises(TurnModelError, match="sha256"):
        prepare_turn_model(cache)
    assert not list((cache / "turn").glob("*.onnx"))
    # without a usable file the broker still starts: sessions end on silence, and the log says why
    (cache / "packages" / TURN_WHEEL).unlink()
    with caplog.at_level(logging.WARNING):
        assert load_turn_model(SttSettings(cache_dir=cache)) is None
    assert "bash scripts/bootstrap.sh" in caplog.text


def test_a_configured_model_path_must_load(tmp_path: Path) -> None:
    broken = tmp_path / "turn.onnx"
    broken.write_bytes(b"not onnx")
    with pytest.raises(Exception, match=r"(?i)protobuf|load|parse"):
        load_turn_model(SttSettings(turn_model_path=broken))


def test_the_images_and_bootstrap_pin_the_same_files() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    bootstrap = (REPO / "scripts" / "bootstrap.sh").read_text()
    assert re.search(rf"TURN_WHEEL_SHA256={TURN_WHEEL_SHA256}\b", dockerfile)
    assert re.search(rf"TURN_MODEL_SHA256={TURN_MODEL_SHA256}\b", dockerfile)
    assert f"fetch_package {TURN_WHEEL} {TURN_WHEEL_SHA256}" in bootstrap
