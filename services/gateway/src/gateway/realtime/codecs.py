"""Realtime audio formats: ``pcm16`` (24 kHz mono little-endian), ``g711_ulaw`` and ``g711_alaw`` (8 kHz).

G.711 is table-driven (ITU-T G.711, as in Sun's reference ``g711.c``), in numpy: ``audioop`` is deprecated
and gone from Python 3.13.
"""

from __future__ import annotations

from typing import Literal

import av
import numpy as np
import numpy.typing as npt

RealtimeFormat = Literal["pcm16", "g711_ulaw", "g711_alaw"]
FORMATS: tuple[RealtimeFormat, ...] = ("pcm16", "g711_ulaw", "g711_alaw")
PCM16_RATE = 24_000
G711_RATE = 8_000

_SEG_ULAW = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
_SEG_ALAW = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])


def sample_rate(fmt: RealtimeFormat) -> int:
    """The sample rate a format implies."""
    return PCM16_RATE if fmt == "pcm16" else G711_RATE


def _ulaw_to_linear() -> npt.NDArray[np.int16]:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - t, t - 0x84).astype(np.int16)


def _alaw_to_linear() -> npt.NDArray[np.int16]:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    seg = (a & 0x70) >> 4
    t = (a & 0x0F) << 4
    t = np.where(seg == 0, t + 8, (t + 0x108) << np.maximum(seg - 1, 0))
    return np.where(a & 0x80, t, -t).astype(np.int16)


def _linear_to_ulaw() -> npt.NDArray[np.uint8]:
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 2
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    value = np.minimum(np.abs(pcm), 8159) + 0x21
    seg = np.searchsorted(_SEG_ULAW, value)
    code = (seg << 4) | ((value >> (np.minimum(seg, 7) + 1)) & 0x0F)
    return (np.where(seg >= 8, 0x7F, code) ^ mask).astype(np.uint8)


def _linear_to_alaw() -> npt.NDArray[np.uint8]:
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 3
    mask = np.where(pcm >= 0, 0xD5, 0x55)
    value = np.where(pcm >= 0, pcm, -pcm - 1)
    seg = np.searchsorted(_SEG_ALAW, value)
    low = np.where(seg < 2, value >> 1, value >> np.minimum(seg, 7)) & 0x0F
    code = (seg << 4) | low
    return (np.where(seg >= 8, 0x7F, code) ^ mask).astype(np.uint8)


ULAW_DECODE, ALAW_DECODE = _ulaw_to_linear(), _alaw_to_linear()
ULAW_ENCODE, ALAW_ENCODE = _linear_to_ulaw(), _linear_to_alaw()


def to_pcm16(data: bytes, fmt: RealtimeFormat) -> bytes:
    """Audio in ``fmt`` as PCM16 at the format's own rate (``sample_rate(fmt)``)."""
    if fmt == "pcm16":
        return data
    table = ULAW_DECODE if fmt == "g711_ulaw" else ALAW_DECODE
    return table[np.frombuffer(data, dtype=np.uint8)].astype("<i2").tobytes()


def from_pcm16(data: bytes, fmt: RealtimeFormat) -> bytes:
    """PCM16 at the format's rate, encoded as ``fmt``."""
    if fmt == "pcm16":
        return data
    table = ULAW_ENCODE if fmt == "g711_ulaw" else ALAW_ENCODE
    return table[np.frombuffer(data, dtype="<i2").astype(np.int32) + 32768].tobytes()


class OutputEncoder:
    """24 kHz PCM16 from the TTS broker to the session's output format, one resampler per response
    (so chunk edges leave no clicks)."""

    def __init__(self, fmt: RealtimeFormat, source_rate: int = PCM16_RATE) -> None:
        self.fmt = fmt
        self.source_rate = source_rate
        self.rate = sample_rate(fmt)
        self._resampler = (
            av.AudioResampler(format="s16", layout="mono", rate=self.rate) if self.rate != source_rate else None
        )
        self._odd = b""

    def encode(self, pcm16: bytes) -> bytes:
        """Encode one chunk (an odd trailing byte waits for the next chunk)."""
        pcm16, self._odd = self._odd + pcm16, b""
        if len(pcm16) % 2:
            pcm16, self._odd = pcm16[:-1], pcm16[-1:]
        if not pcm16:
            return b""
        return from_pcm16(self._resample(pcm16), self.fmt)

    def flush(self) -> bytes:
        """What the resampler still holds."""
        if self._resampler is None:
            return b""
        return from_pcm16(
            b"".join(bytes(f.planes[0])[: f.samples * 2] for f in self._resampler.resample(None)), self.fmt
        )

    def _resample(self, pcm16: bytes) -> bytes:
        if self._resampler is None:
            return pcm16
        frame = av.AudioFrame.from_ndarray(np.frombuffer(pcm16, dtype="<i2")[None, :], format="s16", layout="mono")
        frame.sample_rate = self.source_rate
        return b"".join(bytes(f.planes[0])[: f.samples * 2] for f in self._resampler.resample(frame))


def duration_ms(byte_count: int, fmt: RealtimeFormat) -> int:
    """Milliseconds of audio that ``byte_count`` bytes of ``fmt`` hold."""
    per_sample = 2 if fmt == "pcm16" else 1
    return byte_count // per_sample * 1000 // sample_rate(fmt)


def byte_offset(ms: int, fmt: RealtimeFormat) -> int:
    """Bytes of ``fmt`` that ``ms`` milliseconds take."""
    per_sample = 2 if fmt == "pcm16" else 1
    return ms * sample_rate(fmt) // 1000 * per_sample
