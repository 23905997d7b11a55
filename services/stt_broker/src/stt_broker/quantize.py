"""Quantize a whisper.cpp ggml model (f16 or f32) to q8_0 or q5_1, in numpy.

pywhispercpp does not expose whisper.cpp's ``quantize`` tool, so this does what
it does (``ggml_common_quantize_0`` with ggml's reference block quantizers):
every 2-D weight matrix becomes blocks of 32 values, the biases, norms,
positional embeddings and conv kernels keep their type, and the header's
ftype says which quantization the file holds. The bytes equal those
whisper.cpp's own ``quantize`` writes for the same input.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np
import numpy.typing as npt

from voicestack_common.files import atomic_write

QuantType = Literal["q8_0", "q5_1"]
QUANT_TYPES: tuple[QuantType, ...] = ("q8_0", "q5_1")

GGML_MAGIC = 0x67676D6C
QK = 32  # values per block, both types
_QNT_VERSION = 2  # GGML_QNT_VERSION
_QNT_VERSION_FACTOR = 1000
# ggml_type ids of tensor records, and the llama-style ftype ids of the file header.
_TYPE_F32, _TYPE_F16, _TYPE_Q5_1, _TYPE_Q8_0 = 0, 1, 7, 8
_TENSOR_TYPE: dict[QuantType, int] = {"q8_0": _TYPE_Q8_0, "q5_1": _TYPE_Q5_1}
_FILE_TYPE: dict[QuantType, int] = {"q8_0": 7, "q5_1": 9}  # GGML_FTYPE_MOSTLY_Q8_0 / _Q5_1
# whisper.cpp keeps these in f32 whatever the file type (examples/quantize: to_skip).
_SKIP = ("encoder.conv1.bias", "encoder.conv2.bias", "encoder.positional_embedding", "decoder.positional_embedding")

F32 = npt.NDArray[np.float32]


def _round_away(x: F32) -> F32:
    """C's ``roundf``: halves away from zero (numpy rounds them to even)."""
    return np.trunc(x + np.copysign(np.float32(0.5), x)).astype(np.float32)


def quantize_q8_0(values: F32) -> bytes:
    """Blocks of ``{f16 d; i8 qs[32]}`` with d = max|x| / 127."""
    blocks = values.reshape(-1, QK).astype(np.float32)
    amax = np.abs(blocks).max(axis=1)
    d = amax / np.float32(127)
    inverse = np.divide(np.float32(1), d, out=np.zeros_like(d), where=d != 0)
    qs = _round_away(blocks * inverse[:, None]).astype(np.int8)
    out = np.empty(len(blocks), dtype=[("d", "<f2"), ("qs", "i1", QK)])
    out["d"], out["qs"] = d.astype(np.float16), qs
    return out.tobytes()


def quantize_q5_1(values: F32) -> bytes:
    """Blocks of ``{f16 d; f16 m; u32 qh; u8 qs[16]}``: 5-bit steps from the block minimum."""
    blocks = values.reshape(-1, QK).astype(np.float32)
    low, high = blocks.min(axis=1), blocks.max(axis=1)
    d = (high - low) / np.float32(31)
    inverse = np.divide(np.float32(1), d, out=np.zeros_like(d), where=d != 0)
    # (uint8_t)(x + 0.5f): truncation of a non-negative value.
    q = ((blocks - low[:, None]) * inverse[:, None] + np.float32(0.5)).astype(np.uint8)
    first, second = q[:, : QK // 2], q[:, QK // 2 :]
    qs = (first & 0x0F) | ((second & 0x0F) << 4)
    bit = np.arange(QK // 2, dtype=np.uint32)
    qh = (((first >> 4) & 1).astype(np.uint32) << bit).sum(axis=1, dtype=np.uint32)
    qh |= (((second >> 4) & 1).astype(np.uint32) << (bit + QK // 2)).sum(axis=1, dtype=np.uint32)
    out = np.empty(len(blocks), dtype=[("d", "<f2"), ("m", "<f2"), ("qh", "<u4"), ("qs", "u1", QK // 2)])
    out["d"], out["m"], out["qh"], out["qs"] = d.astype(np.float16), low.astype(np.float16), qh, qs
    return out.tobytes()


_QUANTIZERS = {"q8_0": quantize_q8_0, "q5_1": quantize_q5_1}


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = memoryview(data), 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError(f"ggml file truncated at byte {self.pos}")
        chunk = bytes(self.data[self.pos : self.pos + n])
        self.pos += n
        return chunk

    def ints(self, n: int) -> tuple[int, ...]:
        return struct.unpack(f"<{n}i", self.take(4 * n))


def _tensors(cur: _Cursor) -> Iterator[tuple[str, tuple[int, ...], int, bytes]]:
    """``(name, ggml dims, ggml type, raw data)`` for each tensor record up to the end."""
    while cur.pos < len(cur.data):
        n_dims, name_len, ttype = cur.ints(3)
        dims = cur.ints(n_dims)
        name = cur.take(name_len).decode("utf-8")
        count = int(np.prod(dims, dtype=np.int64))
        if ttype not in (_TYPE_F32, _TYPE_F16):
            raise ValueError(f"tensor {name!r} is already quantized (type {ttype}): quantize an f16 or f32 model")
        yield name, dims, ttype, cur.take(count * (4 if ttype == _TYPE_F32 else 2))


def quantize_ggml(source: Path, target: Path, qtype: QuantType) -> Path:
    """Write ``target``, a ``qtype`` copy of the f16/f32 ggml model ``source`` (atomically)."""
    if qtype not in _QUANTIZERS:
        raise ValueError(f"unknown quantization {qtype!r}; choose one of {', '.join(QUANT_TYPES)}")
    cur = _Cursor(Path(source).read_bytes())
    magic = struct.unpack("<I", cur.take(4))[0]
    if magic != GGML_MAGIC:
        raise ValueError(f"{source} is not a ggml model (bad magic)")
    hparams = list(cur.ints(11))
    if hparams[10] % _QNT_VERSION_FACTOR not in (0, 1):
        raise ValueError(f"{source} is already quantized (ftype {hparams[10]})")
    n_mel, n_fft = cur.ints(2)
    filters = cur.take(4 * n_mel * n_fft)
    (n_vocab,) = cur.ints(1)
    vocab = bytearray()
    for _ in range(n_vocab):
        (length,) = cur.ints(1)
        vocab += struct.pack("<i", length) + cur.take(length)
    hparams[10] = _FILE_TYPE[qtype] + _QNT_VERSION * _QNT_VERSION_FACTOR
    with atomic_write(target) as f:
        f.write(struct.pack("<I11i", GGML_MAGIC, *hparams))
        f.write(struct.pack("<ii", n_mel, n_fft) + filters)
        f.write(struct.pack("<i", n_vocab) + bytes(vocab))
        for name, dims, ttype, data in _tensors(cur):
            _write(f, name, dims, ttype, data, qtype)
    return target


def _write(f: BinaryIO, name: str, dims: tuple[int, ...], ttype: int, data: bytes, qtype: QuantType) -> None:
    encoded = name.encode("utf-8")
    if len(dims) == 2 and name not in _SKIP:
        if dims[0] % QK:
            raise ValueError(f"tensor {name!r} has rows of {dims[0]} values, not a multiple of {QK}")
        values: Any = np.frombuffer(data, dtype="<f4" if ttype == _TYPE_F32 else "<f2").astype(np.float32)
        data, ttype = _QUANTIZERS[qtype](values), _TENSOR_TYPE[qtype]
    f.write(struct.pack("<iii", len(dims), len(encoded), ttype))
    f.write(struct.pack(f"<{len(dims)}i", *dims))
    f.write(encoded)
    f.write(data)
