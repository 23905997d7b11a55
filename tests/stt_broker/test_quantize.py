"""q8_0 / q5_1 quantization in numpy: ggml's block layouts, and whisper.cpp loads and transcribes the result."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from devkit.speech import words
from stt_broker.engines.base import TranscribeOptions
from stt_broker.engines.whispercpp import WhisperCppEngine
from stt_broker.models import ModelError, prepare_bundled_ggml, quantize_model
from stt_broker.quantize import quantize_ggml, quantize_q5_1, quantize_q8_0
from voicestack_common.audio import Pcm, resample


def _dequant_q8_0(raw: bytes) -> np.ndarray:
    blocks = np.frombuffer(raw, dtype=[("d", "<f2"), ("qs", "i1", 32)])
    return (blocks["d"].astype(np.float32)[:, None] * blocks["qs"]).reshape(-1)


def _dequant_q5_1(raw: bytes) -> np.ndarray:
    blocks = np.frombuffer(raw, dtype=[("d", "<f2"), ("m", "<f2"), ("qh", "<u4"), ("qs", "u1", 16)])
    low, high = blocks["qs"] & 0x0F, blocks["qs"] >> 4
    bits = np.arange(16, dtype=np.uint32)
    low = low | (((blocks["qh"][:, None] >> bits) & 1) << 4).astype(np.uint8)
    high = high | (((blocks["qh"][:, None] >> (bits + 16)) & 1) << 4).astype(np.uint8)
    q = np.concatenate([low, high], axis=1).astype(np.float32)
    return (blocks["d"].astype(np.float32)[:, None] * q + blocks["m"].astype(np.float32)[:, None]).reshape(-1)


def test_block_layouts_round_trip_within_one_step() -> None:
    values = np.random.default_rng(7).normal(0, 0.05, 32 * 64).astype(np.float32)
    values[:32] = 0.0  # an all-zero block has d = 0 and must not divide by it
    q8, q5 = quantize_q8_0(values), quantize_q5_1(values)
    assert len(q8) == 64 * 34
    assert len(q5) == 64 * 24
    for raw, decode, steps in ((q8, _dequant_q8_0, 127), (q5, _dequant_q5_1, 31)):
        restored = decode(raw).reshape(-1, 32)
        span = np.abs(values.reshape(-1, 32)).max(axis=1, keepdims=True) * 2
        assert np.all(np.abs(restored - values.reshape(-1, 32)) <= span / steps + 1e-6)
        assert np.all(restored[0] == 0.0)


def test_q8_0_rounds_halves_away_from_zero_like_c() -> None:
    block = np.zeros(32, np.float32)
    block[0], block[1], block[2] = 127.0, 0.5, -2.5  # d = 1: 0.5 -> 1 and -2.5 -> -3 (numpy would give 0, -2)
    qs = np.frombuffer(quantize_q8_0(block)[2:], dtype=np.int8)
    assert list(qs[:3]) == [127, 1, -3]


@pytest.fixture(scope="module")
def quantized(model_cache: Path) -> dict[str, Path]:
    f16 = prepare_bundled_ggml(model_cache)
    return {q: quantize_model(f16, q) for q in ("q8_0", "q5_1")}


def _header(path: Path) -> tuple[int, ...]:
    return struct.unpack("<I11i", path.read_bytes()[:48])


@pytest.mark.engine
@pytest.mark.parametrize(("qtype", "ftype", "ratio"), [("q8_0", 2007, 0.60), ("q5_1", 2009, 0.45)])
def test_whisper_cpp_loads_and_transcribes_quantized_models(
    qtype: str, ftype: int, ratio: float, quantized: dict[str, Path], model_cache: Path, two_sentences: tuple[str, Pcm]
) -> None:
    path = quantized[qtype]
    f16 = prepare_bundled_ggml(model_cache)
    assert path.name == f"ggml-tiny.en-{qtype}.bin"
    assert _header(path)[11] == ftype  # GGML_QNT_VERSION * 1000 + GGML_FTYPE_MOSTLY_*
    assert path.stat().st_size < f16.stat().st_size * ratio
    engine = WhisperCppEngine(path, threads=2)
    engine.load()
    try:
        result = engine.transcribe(resample(two_sentences[1], 16_000), TranscribeOptions(language="en"))
    finally:
        engine.close()
    assert engine.model == f"tiny.en-{qtype}"
    expected = words(two_sentences[0])
    got = words(result.text)
    assert sum(a == b for a, b in zip(got, expected, strict=False)) >= len(expected) - 1


def test_quantizing_twice_reuses_the_file_and_bad_input_is_refused(quantized: dict[str, Path], tmp_path: Path) -> None:
    path = quantized["q8_0"]
    mtime = path.stat().st_mtime_ns
    assert quantize_model(path.with_name("ggml-tiny.en.bin"), "q8_0") == path
    assert path.stat().st_mtime_ns == mtime
    with pytest.raises(ModelError, match="already quantized"):
        quantize_model(path, "q5_1", tmp_path / "twice.bin")
    with pytest.raises(ModelError, match="unknown quantization"):
        quantize_model(path, "q4_0")
    (tmp_path / "not.bin").write_bytes(b"nope" * 20)
    with pytest.raises(ValueError, match="not a ggml model"):
        quantize_ggml(tmp_path / "not.bin", tmp_path / "out.bin", "q8_0")
    assert not (tmp_path / "out.bin").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["not.bin"]


def test_cli_quantize_prints_the_model_path(model_cache: Path, tmp_path: Path, quantized: dict[str, Path]) -> None:
    from voicestack.cli import app

    target = tmp_path / "ggml-tiny.en-q5_1.bin"
    result = CliRunner().invoke(
        app,
        ["models", "quantize", "q5_1", "--source", str(prepare_bundled_ggml(model_cache)), "--output", str(target)],
    )
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith(f"STT_MODEL_PATH={target}")
    assert target.read_bytes() == quantized["q5_1"].read_bytes()
