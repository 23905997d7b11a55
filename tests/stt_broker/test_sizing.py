"""STT_WORKERS / STT_THREADS chosen from the cores, and whisper.cpp's parameters passed as configured."""

from __future__ import annotations

from pathlib import Path

import pytest

from stt_broker.engines import whispercpp_params
from stt_broker.engines.whispercpp import WhisperCppParams
from stt_broker.sizing import pool_layout, usable_cores
from tests.stt_broker.conftest import stt_settings


@pytest.mark.parametrize(
    ("cores", "gpu", "expected"),
    [
        (1, False, (1, 1)),
        (2, False, (2, 1)),
        (4, False, (2, 2)),
        (8, False, (2, 4)),
        (16, False, (4, 4)),
        (2, True, (4, 1)),
        (16, True, (4, 4)),
    ],
)
def test_default_layout_follows_the_cores(cores: int, gpu: bool, expected: tuple[int, int]) -> None:
    workers, threads = pool_layout(cores, gpu=gpu)
    assert (workers, threads) == expected
    if not gpu:
        assert workers * threads <= cores


def test_explicit_values_win_and_fill_the_other() -> None:
    assert pool_layout(8, workers=1) == (1, 4)
    assert pool_layout(8, threads=1) == (8, 1)
    assert pool_layout(2, workers=3, threads=2) == (3, 2)


def test_usable_cores_respects_a_cgroup_quota(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("100000 100000\n")
    assert usable_cores(tmp_path) == 1
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert usable_cores(tmp_path) >= 1
    assert usable_cores(tmp_path / "missing") >= 1


def test_settings_default_to_whisper_cpp_defaults(model_cache: Path) -> None:
    import _pywhispercpp as pw

    params = whispercpp_params(stt_settings(model_cache))
    assert params == WhisperCppParams()
    context = pw.whisper_context_default_params()
    assert params.flash_attn is context.flash_attn is True
    full = pw.whisper_full_default_params(pw.WHISPER_SAMPLING_GREEDY)
    for name, value in params.full_params().items():
        if name in ("greedy", "beam_search"):
            continue
        assert getattr(full, name) == pytest.approx(value), name
    assert full.greedy == {"best_of": params.best_of}
    assert full.beam_search["beam_size"] == -1


def test_an_empty_suppress_regex_is_left_to_whisper_cpp(model_cache: Path) -> None:
    """Not passed at all: an empty pattern (rather than none) costs a regex match per token per step."""
    assert "suppress_regex" not in whispercpp_params(stt_settings(model_cache)).full_params()
    pattern = whispercpp_params(stt_settings(model_cache, suppress_regex=r"^\[.*\]$")).full_params()
    assert pattern["suppress_regex"] == r"^\[.*\]$"


def test_beam_and_fallback_settings_reach_the_engine(model_cache: Path) -> None:
    settings = stt_settings(model_cache, beam_size=5, temperature_inc=0.0, flash_attn=False, no_speech_thold=0.4)
    params = whispercpp_params(settings)
    assert params.full_params()["beam_search"] == {"beam_size": 5, "patience": -1.0}
    assert params.full_params()["temperature_inc"] == 0.0
    assert params.context_params() == {"use_gpu": False, "gpu_device": 0, "flash_attn": False}
    dtw = whispercpp_params(stt_settings(model_cache, flash_attn=False, dtw_aheads_preset="tiny.en"))
    assert dtw.context_params()["dtw_token_timestamps"] is True


def test_dtw_with_flash_attention_is_refused(model_cache: Path) -> None:
    with pytest.raises(ValueError, match="FLASH_ATTN=false"):
        stt_settings(model_cache, dtw_aheads_preset="tiny.en")
