"""The CTranslate2 -> whisper.cpp converter: file format, atomicity and numerical fidelity.

The engine tests run both real engines on the bundled Whisper tiny.en: faster-whisper
(CTranslate2) on the original model and whisper.cpp (pywhispercpp's bundled 1.8.5
library) on the converted file.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import shutil
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from devkit.speech import words
from stt_broker import convert
from stt_broker.convert import convert_ct2_to_ggml, default_source_model_dir, mel_filters, read_ct2_model

# Sentences espeak-ng (default voice, 130 wpm) renders clearly enough that tiny.en gets every
# word right with both engines at 120-150 wpm, so equality is not hostage to a near-tie.
SPEECH = (
    "Good morning everyone. Please send me the report tomorrow. "
    "I will call you later this afternoon. Thank you very much."
)
N_THREADS = 2

# whisper.cpp runs its matmuls with float16 weights and float16-rounded activations (and f16
# KV/flash attention); CTranslate2 "float32" computes in float32 on the very same f16 weights.
# Measured (x86-64, 2 threads): max |delta log p| of a forced token 0.014 on this audio and 0.042
# on harder, half-misrecognised espeak audio; max per-step KL(ct2 || whisper.cpp) 7e-4 / 2e-3.
# CTranslate2's own int8 mode is ~0.28 away from its float32 mode on the same check. Zeroing one
# bias family or dropping the query scale moves log-probs by 0.3 to several nats, so the bounds
# leave >2x headroom for other CPUs' f16 kernels and still catch conversion bugs.
MAX_TOKEN_LOGPROB_DIFF = 0.1
MAX_STEP_KL = 0.01


# --- helpers -----------------------------------------------------------------------------------------

_CT2_TYPE_IDS = {
    np.dtype("<f4"): 0,
    np.dtype("i1"): 1,
    np.dtype("<i2"): 2,
    np.dtype("<i4"): 3,
    np.dtype("<f2"): 4,
}


def _ct2_string(text: str) -> bytes:
    raw = text.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def write_ct2_model(
    path: Path,
    variables: dict[str, np.ndarray],
    aliases: list[tuple[str, str]] | None = None,
    version: int = 6,
) -> None:
    """Serialize variables the way CTranslate2's ModelSpec does (binary version 6)."""
    aliases = aliases or []
    out = [struct.pack("<I", version), _ct2_string("WhisperSpec"), struct.pack("<II", 3, len(variables))]
    for name, value in variables.items():
        arr = np.asarray(value, order="C")  # not ascontiguousarray: that turns scalars into 1-D
        out += [_ct2_string(name), struct.pack(f"<B{arr.ndim}I", arr.ndim, *arr.shape)]
        out += [struct.pack("<BI", _CT2_TYPE_IDS[arr.dtype], arr.nbytes), arr.tobytes()]
    out.append(struct.pack("<I", len(aliases)))
    out += [_ct2_string(alias) + _ct2_string(target) for alias, target in aliases]
    path.write_bytes(b"".join(out))


@dataclass
class GgmlFile:
    """A parsed whisper.cpp ggml model file."""

    hparams: list[int]
    filters: npt.NDArray[np.float32]
    vocab: list[bytes]
    tensors: dict[str, tuple[int, np.ndarray]]  # name -> (ggml type: 0 f32 / 1 f16, data)


def read_ggml(path: Path) -> GgmlFile:
    """Parse a ggml file independently of the converter's own code."""
    data = path.read_bytes()
    magic, *hparams = struct.unpack_from("<I11i", data, 0)
    assert magic == 0x67676D6C
    pos = 48
    n_mel, n_fft = struct.unpack_from("<ii", data, pos)
    pos += 8
    filters = np.frombuffer(data, "<f4", n_mel * n_fft, pos).reshape(n_mel, n_fft)
    pos += 4 * n_mel * n_fft
    (n_vocab,) = struct.unpack_from("<i", data, pos)
    pos += 4
    vocab = []
    for _ in range(n_vocab):
        (length,) = struct.unpack_from("<i", data, pos)
        vocab.append(data[pos + 4 : pos + 4 + length])
        pos += 4 + length
    tensors: dict[str, tuple[int, np.ndarray]] = {}
    while pos < len(data):
        n_dims, name_len, ttype = struct.unpack_from("<iii", data, pos)
        ne = struct.unpack_from(f"<{n_dims}i", data, pos + 12)
        pos += 12 + 4 * n_dims
        name = data[pos : pos + name_len].decode()
        pos += name_len
        dtype = {0: "<f4", 1: "<f2"}[ttype]
        count = int(np.prod(ne))
        tensors[name] = (ttype, np.frombuffer(data, dtype, count, pos).reshape(tuple(reversed(ne))))
        pos += count * np.dtype(dtype).itemsize
    assert pos == len(data)
    return GgmlFile(hparams, filters, vocab, tensors)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    result: np.ndarray = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return result


def _whisper_cpp_library() -> ctypes.CDLL:
    """The libwhisper pywhispercpp ships and loads (whisper.cpp 1.8.5), for its raw C API."""
    spec = importlib.util.find_spec("_pywhispercpp")
    assert spec is not None
    assert spec.origin is not None
    site = Path(spec.origin).parent
    candidates = sorted(site.glob("pywhispercpp.libs/libwhisper*.so*")) + sorted(site.glob("libwhisper*"))
    if not candidates:
        pytest.skip("pywhispercpp's libwhisper shared library was not found next to the extension")
    lib = ctypes.CDLL(str(candidates[0]))
    ptr, c_int, float_p = ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_float)
    lib.whisper_init_from_file.restype, lib.whisper_init_from_file.argtypes = ptr, [ctypes.c_char_p]
    lib.whisper_set_mel.argtypes = [ptr, float_p, c_int, c_int]
    lib.whisper_encode.argtypes = [ptr, c_int, c_int]
    lib.whisper_decode.argtypes = [ptr, ctypes.POINTER(c_int), c_int, c_int, c_int]
    lib.whisper_get_logits.restype, lib.whisper_get_logits.argtypes = float_p, [ptr]
    lib.whisper_n_vocab.argtypes = [ptr]
    lib.whisper_free.argtypes = [ptr]
    return lib


def whisper_cpp_forced_logits(model: Path, mel: np.ndarray, prompt: list[int], forced: list[int]) -> np.ndarray:
    """whisper.cpp's next-token logits after prompt and after each forced token (teacher forcing).

    pywhispercpp's Python binding of whisper_get_logits returns only the first float, so the
    C API of the very library it loaded is called through ctypes instead.
    """
    lib = _whisper_cpp_library()
    ctx = lib.whisper_init_from_file(str(model).encode())
    assert ctx, "whisper.cpp refused the converted model"
    try:
        n_vocab = lib.whisper_n_vocab(ctx)
        mel = np.ascontiguousarray(mel, dtype=np.float32)  # [n_mels, n_frames], row-major as whisper.cpp
        assert lib.whisper_set_mel(ctx, mel.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), *mel.shape[::-1]) == 0
        assert lib.whisper_encode(ctx, 0, N_THREADS) == 0
        rows = []

        def step(tokens: list[int], n_past: int) -> None:
            # whisper_decode keeps logits of the last token only, in row len(tokens) - 1.
            assert lib.whisper_decode(ctx, (ctypes.c_int * len(tokens))(*tokens), len(tokens), n_past, N_THREADS) == 0
            flat = np.ctypeslib.as_array(lib.whisper_get_logits(ctx), shape=(len(tokens) * n_vocab,))
            rows.append(flat[-n_vocab:].copy())

        step(prompt, 0)
        for i, token in enumerate(forced):
            step([token], len(prompt) + i)
        return np.stack(rows)
    finally:
        lib.whisper_free(ctx)


# --- fixtures ----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def source_dir() -> Path:
    return default_source_model_dir()


@pytest.fixture(scope="session")
def converted(source_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled model converted once for the whole session."""
    out = tmp_path_factory.mktemp("ggml") / "ggml-tiny.en.bin"
    started = time.perf_counter()
    assert convert_ct2_to_ggml(source_dir, out) == out
    print(f"conversion: {time.perf_counter() - started:.2f} s, {out.stat().st_size} bytes")
    return out


@pytest.fixture(scope="session")
def ggml(converted: Path) -> GgmlFile:
    return read_ggml(converted)


@pytest.fixture(scope="session")
def speech(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """The SPEECH sentences from espeak-ng as 16 kHz mono float32."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    from faster_whisper import decode_audio

    wav = tmp_path_factory.mktemp("speech") / "speech.wav"
    subprocess.run(["espeak-ng", "-s", "130", "-w", str(wav), SPEECH], check=True, timeout=60)
    audio = decode_audio(str(wav), sampling_rate=16_000)
    assert audio.dtype == np.float32
    assert audio.ndim == 1
    return np.asarray(audio)


@pytest.fixture(scope="session")
def faster_whisper_model(source_dir: Path) -> Any:
    from faster_whisper import WhisperModel

    return WhisperModel(str(source_dir), device="cpu", compute_type="float32", cpu_threads=N_THREADS)


# --- read_ct2_model ----------------------------------------------------------------------------------


def test_reads_the_bundled_model(source_dir: Path) -> None:
    weights = read_ct2_model(source_dir / "model.bin")
    embedding = weights["decoder/embeddings/weight"]
    assert embedding.shape == (51864, 384)
    assert embedding.dtype == np.float16
    assert weights["decoder/projection/weight"] is embedding  # alias resolved to the same array
    assert int(weights["encoder/num_heads"]) == 6
    assert int(weights["decoder/num_heads"]) == 6
    assert weights["encoder/conv1/weight"].shape == (384, 80, 3)
    # Whisper has no key bias: CTranslate2 fuses q|k|v and stores zeros for k's bias.
    fused_bias = weights["encoder/layer_0/self_attention/linear_0/bias"]
    assert fused_bias.shape == (1152,)
    assert not fused_bias[384:768].any()
    assert fused_bias[:384].any()
    # No queries_scale variable: CTranslate2 applies 1/sqrt(d_head) at run time, as whisper.cpp does.
    assert not [name for name in weights if name.endswith("queries_scale")]


def test_dequantizes_int8_and_int16_and_resolves_aliases(tmp_path: Path) -> None:
    rows = np.array([[0.5, -1.0, 0.25], [2.0, 1.0, -0.5]], dtype=np.float32)
    scale = (127.0 / np.abs(rows).max(axis=1)).astype(np.float32)  # CTranslate2's per-row int8 scheme
    q8 = np.rint(rows * scale[:, None]).astype(np.int8)
    s16 = np.float32(2**10 / 2.0)  # int16: one scalar scale
    q16 = np.rint(rows * s16).astype(np.int16)
    write_ct2_model(
        tmp_path / "model.bin",
        {
            "a/weight": q8,
            "a/weight_scale": scale,
            "b/weight": q16,
            "b/weight_scale": np.array(s16),
            "c/bias": np.arange(3, dtype=np.float16),
            "num_heads": np.array(6, dtype=np.int16),
            "flag": np.array(1, dtype=np.int8),
        },
        [("d/weight", "a/weight")],
    )
    weights = read_ct2_model(tmp_path / "model.bin")
    np.testing.assert_allclose(weights["a/weight"], rows, atol=1 / 127)
    np.testing.assert_allclose(weights["b/weight"], rows, atol=1 / 2**9)
    assert weights["a/weight"].dtype == np.float32
    assert weights["d/weight"] is weights["a/weight"]
    assert "a/weight_scale" not in weights
    assert "b/weight_scale" not in weights
    assert weights["c/bias"].dtype == np.float16
    assert weights["c/bias"].tolist() == [0, 1, 2]
    # Integer scalars without a scale companion are configuration, not weights: kept as stored.
    assert weights["num_heads"].dtype == np.int16
    assert int(weights["num_heads"]) == 6
    assert weights["flag"].dtype == np.int8


def _corrupt(kind: str, source: Path, path: Path) -> None:
    """Write a broken model.bin of the given kind to path."""
    good = {"w": np.ones((2, 2), dtype=np.float16)}
    if kind == "truncated":
        with (source / "model.bin").open("rb") as handle:
            path.write_bytes(handle.read(1_000_000))  # cut inside the variables
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind in ("future version", "version 3 (no dtype ids)"):
        write_ct2_model(path, good, version=99 if kind == "future version" else 3)
    elif kind == "dangling alias":
        write_ct2_model(path, good, [("x", "missing")])
    else:
        write_ct2_model(path, good)
        raw = bytearray(path.read_bytes())
        # Tail of a one-variable file: dtype id (1), byte count (4), 8 data bytes, alias count (4).
        if kind == "payload size mismatch":
            raw[-16:-12] = struct.pack("<I", 6)
        elif kind == "unknown dtype":
            raw[-17] = 9
        else:
            raw += b"x"
        path.write_bytes(bytes(raw))


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("truncated", "truncated"),
        ("empty", "truncated"),
        ("future version", "binary version 99"),
        ("version 3 (no dtype ids)", "binary version 3"),
        ("payload size mismatch", "payload size"),
        ("unknown dtype", "dtype id 9"),
        ("trailing bytes", "trailing"),
        ("dangling alias", "missing variable"),
    ],
)
def test_rejects_corrupt_model_bin(kind: str, message: str, source_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    _corrupt(kind, source_dir, path)
    with pytest.raises(ValueError, match=message):
        read_ct2_model(path)


# --- the ggml file -----------------------------------------------------------------------------------


@pytest.mark.parametrize("n_mels", [80, 128])
def test_mel_filters_match_librosa(n_mels: int) -> None:
    librosa = pytest.importorskip("librosa")
    expected = librosa.filters.mel(sr=16_000, n_fft=400, n_mels=n_mels)
    actual = mel_filters(n_mels)
    assert actual.shape == (n_mels, 201)
    assert actual.dtype == np.float32
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-6)


def test_ggml_header_vocab_and_tensors(ggml: GgmlFile, source_dir: Path) -> None:
    # n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer, n_text_ctx, n_text_state,
    # n_text_head, n_text_layer, n_mels, ftype (1 = f16 matrices), as openai's tiny.en dims.
    assert ggml.hparams == [51864, 1500, 384, 6, 4, 448, 384, 6, 4, 80, 1]
    np.testing.assert_array_equal(ggml.filters, mel_filters(80))

    # whisper.cpp reads the regular tokens only (ids below <|endoftext|>) and names the rest itself.
    assert len(ggml.vocab) == 50256
    assert ggml.vocab[0] == b"!"
    assert ggml.vocab[220] == b" "
    assert ggml.vocab[198] == b"\n"
    # Byte-level tokens (GPT-2's bytes_to_unicode undone) must spell what the tokenizer encoded,
    # including multi-byte UTF-8 split across tokens.
    from tokenizers import Tokenizer

    text = " Hello world, naïve café – 日本語 🙂\n\ttabs"
    ids = Tokenizer.from_file(str(source_dir / "tokenizer.json")).encode(text, add_special_tokens=False).ids
    assert max(ids) < 50256
    assert len(ids) > 10
    assert b"".join(ggml.vocab[i] for i in ids).decode("utf-8") == text

    names = set(ggml.tensors)
    assert len(names) == 7 + 4 * 15 + 4 + 4 * 24  # whisper.cpp refuses a file missing any of them
    assert not [n for n in names if n.endswith("key.bias")]  # whisper.cpp has no key bias tensors
    for name, (ttype, data) in ggml.tensors.items():
        wants_f32 = data.ndim == 1 or name.endswith(("positional_embedding", "conv1.bias", "conv2.bias"))
        assert ttype == (0 if wants_f32 else 1), name
    assert ggml.tensors["encoder.conv1.bias"][1].shape == (384, 1)
    assert ggml.tensors["encoder.conv1.weight"][1].shape == (384, 80, 3)
    assert ggml.tensors["decoder.token_embedding.weight"][1].shape == (51864, 384)

    # The fused CTranslate2 projections land, unchanged, in whisper.cpp's separate tensors.
    weights = read_ct2_model(source_dir / "model.bin")
    fused = weights["decoder/layer_1/self_attention/linear_0/weight"]
    for i, part in enumerate(("query", "key", "value")):
        np.testing.assert_array_equal(
            ggml.tensors[f"decoder.blocks.1.attn.{part}.weight"][1], fused[i * 384 : (i + 1) * 384]
        )
    kv = weights["decoder/layer_3/attention/linear_1/bias"]
    np.testing.assert_array_equal(ggml.tensors["decoder.blocks.3.cross_attn.value.bias"][1], kv[384:])
    np.testing.assert_array_equal(
        ggml.tensors["decoder.blocks.3.cross_attn.query.weight"][1],
        weights["decoder/layer_3/attention/linear_0/weight"],
    )
    np.testing.assert_array_equal(ggml.tensors["encoder.ln_post.bias"][1], weights["encoder/layer_norm/beta"])


def test_folded_query_scale_is_undone(source_dir: Path, ggml: GgmlFile, tmp_path: Path) -> None:
    # A CTranslate2 model may carry the 1/sqrt(d_head) query scaling in its weights, announced by
    # queries_scale=1 (CTranslate2 then skips its run-time 1/sqrt(d_head)). Build one from the bundled
    # model and check the converter hands whisper.cpp the unscaled weights again.
    weights = read_ct2_model(source_dir / "model.bin")
    weights.pop("decoder/projection/weight")
    for name in [
        n for n in weights if n.endswith("attention/linear_0/weight") or n.endswith("attention/linear_0/bias")
    ]:
        value = weights[name].astype(np.float32)
        value[:384] *= 64**-0.5  # d_head = 384 / 6 heads
        weights[name] = value.astype(np.float16)
        weights[name.rsplit("/", 2)[0] + "/queries_scale"] = np.array(1.0, dtype=np.float32)
    folded = tmp_path / "folded"
    folded.mkdir()
    write_ct2_model(folded / "model.bin", weights, [("decoder/projection/weight", "decoder/embeddings/weight")])
    shutil.copy(source_dir / "tokenizer.json", folded / "tokenizer.json")
    result = read_ggml(convert_ct2_to_ggml(folded, tmp_path / "folded.bin"))
    for name in (
        "encoder.blocks.2.attn.query.weight",
        "decoder.blocks.0.attn.query.bias",
        "decoder.blocks.3.cross_attn.query.weight",
    ):
        np.testing.assert_allclose(
            result.tensors[name][1].astype(np.float32),
            ggml.tensors[name][1].astype(np.float32),
            rtol=2e-3,
            atol=1e-6,
        )
    np.testing.assert_array_equal(
        result.tensors["encoder.blocks.2.attn.key.weight"][1],
        ggml.tensors["encoder.blocks.2.attn.key.weight"][1],
    )


# --- atomicity ---------------------------------------------------------------------------------------


def test_failed_conversion_leaves_previous_file_and_no_temp(
    source_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "ggml-tiny.en.bin"
    out.write_bytes(b"previous model")
    real_write, calls = convert._write_tensor, []

    def crash_midway(*args: Any) -> None:
        calls.append(args[1])
        if len(calls) == 20:
            raise OSError("disk full")
        real_write(*args)

    monkeypatch.setattr(convert, "_write_tensor", crash_midway)
    with pytest.raises(OSError, match="disk full"):
        convert_ct2_to_ggml(source_dir, out)
    assert len(calls) == 20  # it really died half-way through the tensors
    assert out.read_bytes() == b"previous model"
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]

    monkeypatch.undo()  # the next run succeeds and replaces the old file whole
    convert_ct2_to_ggml(source_dir, out)
    assert out.read_bytes()[:4] == struct.pack("<I", 0x67676D6C)
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


def test_invalid_source_creates_nothing(tmp_path: Path) -> None:
    source = tmp_path / "not-a-model"
    source.mkdir()
    write_ct2_model(source / "model.bin", {"w": np.ones(2, dtype=np.float32)})
    (source / "tokenizer.json").write_text(json.dumps({"model": {"vocab": {}}, "added_tokens": []}))
    out = tmp_path / "out" / "model.bin"
    with pytest.raises(ValueError, match="Whisper"):
        convert_ct2_to_ggml(source, out)
    assert not out.exists()
    assert not out.parent.exists() or not any(out.parent.iterdir())


# --- the converted model in whisper.cpp --------------------------------------------------------------


@pytest.mark.engine
def test_whisper_cpp_transcribes_like_faster_whisper(
    converted: Path, speech: np.ndarray, faster_whisper_model: Any
) -> None:
    from pywhispercpp.model import Model

    segments, _ = faster_whisper_model.transcribe(
        speech,
        beam_size=1,
        temperature=0.0,
        language="en",
        vad_filter=False,
        condition_on_previous_text=False,
    )
    reference = " ".join(segment.text for segment in segments)

    model = Model(str(converted), n_threads=N_THREADS, print_progress=False, print_realtime=False)
    # temperature_inc=0 turns off whisper.cpp's temperature fallback: one greedy pass, like the reference.
    transcript = " ".join(s.text for s in model.transcribe(speech, temperature=0.0, temperature_inc=0.0))
    print(f"faster-whisper: {reference.strip()!r}\nwhisper.cpp:    {transcript.strip()!r}")
    assert words(transcript) == words(reference)
    assert words(reference) == words(SPEECH)  # and both are right, so the comparison means something


@pytest.mark.engine
def test_teacher_forced_token_probabilities_match(
    converted: Path, speech: np.ndarray, faster_whisper_model: Any
) -> None:
    import ctranslate2
    from faster_whisper.tokenizer import Tokenizer

    tokenizer = Tokenizer(faster_whisper_model.hf_tokenizer, multilingual=False, task="transcribe", language="en")
    prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
    # Both engines get the same log-mel input, so any difference is the model, not the front end.
    mel = faster_whisper_model.feature_extractor(speech)[:, :3000]
    mel = np.ascontiguousarray(np.pad(mel, ((0, 0), (0, 3000 - mel.shape[1]))), dtype=np.float32)

    # CTranslate2's greedy path with the raw logits of every step (nothing suppressed) is its own
    # teacher-forced run on that sequence; whisper.cpp is then forced along the same tokens.
    result = faster_whisper_model.model.generate(
        ctranslate2.StorageView.from_array(mel[None]),
        [prompt],
        beam_size=1,
        return_logits_vocab=True,
        suppress_blank=False,
        suppress_tokens=[],
        max_length=200,
    )[0]
    tokens = list(result.sequences_ids[0])
    ct2 = _log_softmax(np.stack([np.asarray(step) for step in result.logits[0]]))
    assert words(tokenizer.decode(tokens)) == words(SPEECH)
    cpp = _log_softmax(whisper_cpp_forced_logits(converted, mel, prompt, tokens))
    targets = [*tokens, tokenizer.eot]  # the last step predicts end-of-text
    assert ct2.shape == cpp.shape == (len(targets), 51864)

    steps = np.arange(len(targets))
    token_diff = np.abs(ct2[steps, targets] - cpp[steps, targets])
    kl = (np.exp(ct2) * (ct2 - cpp)).sum(axis=-1)
    print(
        f"{len(targets)} forced tokens: max |dlogp| {token_diff.max():.4f}, mean {token_diff.mean():.4f}, "
        f"max prob diff {np.abs(np.exp(ct2[steps, targets]) - np.exp(cpp[steps, targets])).max():.4f}, "
        f"max KL {kl.max():.2e}"
    )
    assert token_diff.max() < MAX_TOKEN_LOGPROB_DIFF
    assert kl.max() < MAX_STEP_KL
