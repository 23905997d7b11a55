"""STT_WORKERS / STT_THREADS chosen from the cores, elastic threads, and whisper.cpp's parameters passed
as configured."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from stt_broker.engines import whispercpp_params
from stt_broker.engines.base import Segment, TranscribeOptions
from stt_broker.engines.whispercpp import WhisperCppEngine, WhisperCppParams
from stt_broker.models import prepare_bundled_ggml
from stt_broker.sizing import MAX_THREADS, ThreadBudget, elastic_threads, pool_layout, usable_cores
from tests.stt_broker.conftest import stt_settings
from voicestack_common.audio import Pcm, resample
from voicestack_common.encode import encode_audio


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


@pytest.mark.parametrize(
    ("cores", "expected"), [(1, (1, 1)), (2, (2, 2)), (3, (3, 3)), (4, (4, 4)), (8, (8, 4)), (16, (16, 4))]
)
def test_elastic_layout_has_a_context_per_core_and_a_decode_takes_at_most_four(
    cores: int, expected: tuple[int, int]
) -> None:
    assert pool_layout(cores, elastic=True) == expected
    assert pool_layout(cores, workers=1, elastic=True) == (1, expected[1])
    assert pool_layout(cores, threads=1, elastic=True) == (cores, 1)  # a fixed count wins
    assert pool_layout(cores, gpu=True, elastic=True) == pool_layout(cores, gpu=True)


@pytest.mark.parametrize(
    ("cores", "running", "in_use", "expected"),
    [
        (2, 0, 0, 2),  # a lone request: every core
        (2, 1, 2, 1),  # one arriving during it: nothing is free, still 1
        (2, 1, 1, 1),  # under load: an even share
        (2, 3, 3, 1),
        (1, 0, 0, 1),
        (4, 0, 0, 4),
        (4, 1, 4, 1),
        (4, 1, 1, 2),  # the fair share, though 3 are free
        (4, 3, 3, 1),
        (8, 0, 0, MAX_THREADS),
        (8, 1, 4, 4),
        (8, 2, 8, 1),
        (16, 3, 12, 4),
        (16, 7, 14, 2),
    ],
)
def test_a_decode_takes_its_share_of_the_cores(cores: int, running: int, in_use: int, expected: int) -> None:
    assert elastic_threads(cores, running, in_use) == expected


def test_a_budget_hands_out_and_takes_back_threads() -> None:
    budget = ThreadBudget(4)
    seen: list[int] = []
    budget.observe = seen.append
    with budget.share() as first:
        with budget.share() as second, budget.share() as third:
            assert (budget.running, budget.in_use) == (3, 6)
        with budget.share() as fourth, budget.share() as fifth:
            pass
    assert (first, second, third, fourth, fifth) == (4, 1, 1, 1, 1)
    with budget.share() as alone, budget.share() as beside:
        assert (budget.running, budget.in_use) == (2, 5)  # 1 over the cores until the first ends
    assert (alone, beside) == (4, 1)  # it cannot have what the running decode holds
    assert seen == [4, 1, 1, 1, 1, 4, 1]
    assert (budget.running, budget.in_use) == (0, 0)
    with pytest.raises(RuntimeError), budget.share():
        raise RuntimeError("a failed decode gives its threads back too")
    assert (budget.running, budget.in_use) == (0, 0)


def test_elastic_threads_are_the_cpu_whisper_cpp_default(model_cache: Path) -> None:
    cores = usable_cores()
    settings = stt_settings(model_cache)
    assert settings.elastic
    assert settings.layout() == (cores, min(MAX_THREADS, cores))
    budget = settings.thread_budget()
    assert budget is not None
    assert budget.cores == cores
    for fixed in (
        stt_settings(model_cache, threads=1),
        stt_settings(model_cache, elastic_threads=False),
        stt_settings(model_cache, use_gpu=True),
    ):
        assert not fixed.elastic
        assert fixed.thread_budget() is None
    assert stt_settings(model_cache, threads=1).layout() == (cores, 1)
    assert stt_settings(model_cache, elastic_threads=False).layout() == pool_layout(cores)


@pytest.mark.engine
def test_a_lone_decode_takes_the_cores_and_overlapping_ones_share_them(
    model_cache: Path, two_sentences: tuple[str, Pcm]
) -> None:
    """Real whisper.cpp contexts on one budget: the second decode starts while the first is running
    (from the first's segment callback) and gets fewer threads; whisper.cpp is handed what each took."""
    cores = usable_cores()
    if cores < 2:
        pytest.skip("one core: every decode gets 1 thread")
    budget = ThreadBudget(cores)
    path = prepare_bundled_ggml(model_cache)
    first, second = WhisperCppEngine(path, budget=budget), WhisperCppEngine(path, budget=budget)
    first.load()
    second.load()
    audio = resample(two_sentences[1], 16_000)
    options = TranscribeOptions(language="en")
    during: list[int] = []

    def start_another(_: Segment) -> None:
        if not during:
            overlapping = threading.Thread(target=second.transcribe, args=(audio, options))
            overlapping.start()
            overlapping.join()
            during.append(second.last_threads)
            during.append(second._model._params.n_threads)

    try:
        first.transcribe(audio, options, on_segment=start_another)
        lone = first.last_threads
        applied = first._model._params.n_threads
        second.transcribe(audio, options)
        after = second.last_threads
    finally:
        first.close()
        second.close()
    assert lone == applied == min(MAX_THREADS, cores)
    assert during == [max(1, cores - lone)] * 2
    assert during[0] < lone
    assert after == lone  # the threads came back
    assert (budget.running, budget.in_use) == (0, 0)


@pytest.mark.engine
def test_the_broker_reports_the_threads_of_each_decode(stt_client: TestClient, sentence: tuple[str, Pcm]) -> None:
    def decoded() -> tuple[float, float]:
        metrics = stt_client.get("/metrics").text
        count = re.search(r"^stt_decode_threads_count ([\d.e+]+)$", metrics, re.M)
        total = re.search(r"^stt_decode_threads_sum ([\d.e+]+)$", metrics, re.M)
        assert count is not None
        assert total is not None
        return float(count.group(1)), float(total.group(1))

    before = decoded()
    assert stt_client.post("/v1/transcribe", files={"file": ("a.wav", encode_audio(sentence[1], "wav"))}).is_success
    after = decoded()
    assert after[0] == before[0] + 1
    assert after[1] - before[1] == min(MAX_THREADS, usable_cores())


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
