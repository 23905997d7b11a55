"""From a session's input bytes to 16 kHz mono float32, incrementally.

Each format has a decoder that turns a slice of bytes into mono samples at
its own rate; one stateful FFmpeg resampler per session brings them to
16 kHz exactly once. Every decoder notes which input byte starts which output
sample (``SyncPoint``), so a relay can resume a session elsewhere.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import av
import numpy as np

from stt_broker.live.containers import (
    BrokenStream,
    OggDemuxer,
    Packet,
    WebmDemuxer,
    opus_channels,
    opus_preskip,
)
from voicestack_common.audio import STT_SAMPLE_RATE, Samples, UnsupportedAudio
from voicestack_common.live import LiveFormat

OPUS_RATE = 48_000
_EMPTY = np.zeros(0, np.float32)


@dataclass(frozen=True, slots=True)
class SyncPoint:
    """Input byte ``offset`` starts the audio at output sample ``sample`` (16 kHz)."""

    sample: int
    offset: int


class _Decoder(Protocol):
    sample_rate: int | None

    @property
    def header_bytes(self) -> int:
        """Leading input bytes (the container's header) a replay must start with."""
        ...

    def feed(self, data: bytes) -> Iterator[tuple[int, Samples]]:
        """(input offset, mono samples at ``sample_rate``) for each unit ``data`` completes."""
        ...

    @property
    def pending(self) -> int:
        """Input bytes held back, waiting for the rest of their unit."""
        ...


def _pcm16(data: bytes, channels: int) -> Samples:
    ints = np.frombuffer(data, dtype="<i2").reshape(-1, channels)
    mono: Samples = (ints.astype(np.float32) / 32768.0).mean(axis=1, dtype=np.float32)
    return mono


class Pcm16Decoder:
    """Raw little-endian PCM16, interleaved; an odd trailing byte waits for the next slice."""

    def __init__(self, sample_rate: int, channels: int) -> None:
        self.sample_rate: int | None = sample_rate
        self.channels = channels
        self.header_bytes = 0
        self._rest = b""
        self._offset = 0

    @property
    def pending(self) -> int:
        return len(self._rest)

    def feed(self, data: bytes) -> Iterator[tuple[int, Samples]]:
        data = self._rest + data
        frame = 2 * self.channels
        usable = len(data) - len(data) % frame
        self._rest = data[usable:]
        if usable:
            yield self._offset, _pcm16(data[:usable], self.channels)
            self._offset += usable


class WavDecoder:
    """A streamed WAV: the RIFF header, then PCM16 (the declared data size is not trusted)."""

    def __init__(self) -> None:
        self.sample_rate: int | None = None
        self.header_bytes = 0
        self._head = b""
        self._pcm: Pcm16Decoder | None = None

    @property
    def pending(self) -> int:
        return self._pcm.pending if self._pcm else len(self._head)

    def feed(self, data: bytes) -> Iterator[tuple[int, Samples]]:
        if self._pcm is not None:
            for offset, samples in self._pcm.feed(data):
                yield offset + self.header_bytes, samples
            return
        self._head += data
        if len(self._head) >= 4 and not self._head.startswith(b"RIFF"):
            raise UnsupportedAudio("the stream is not WAV: it does not start with 'RIFF'")
        if len(self._head) > 1 << 16:
            raise BrokenStream("the WAV header has no 'data' chunk in its first 64 KiB")
        found = self._parse()
        if found is None:
            return
        rate, channels, start = found
        self.sample_rate, self.header_bytes = rate, start
        self._pcm = Pcm16Decoder(rate, channels)
        rest, self._head = self._head[start:], b""
        yield from self.feed(rest)

    def _parse(self) -> tuple[int, int, int] | None:
        head, pos, fmt = self._head, 12, None
        while pos + 8 <= len(head):
            chunk, size = head[pos : pos + 4], struct.unpack("<I", head[pos + 4 : pos + 8])[0]
            if chunk == b"fmt ":
                if pos + 8 + 16 > len(head):
                    return None
                tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", head[pos + 8 : pos + 24])
                if tag not in (1, 0xFFFE) or bits != 16 or channels < 1:
                    raise UnsupportedAudio("streamed WAV must be 16-bit PCM", code="unsupported_codec")
                fmt = (rate, channels)
            elif chunk == b"data":
                if fmt is None:
                    raise BrokenStream("the WAV 'data' chunk comes before its 'fmt ' chunk")
                return fmt[0], fmt[1], pos + 8
            pos += 8 + size + (size & 1)
        return None


class OpusDecoder:
    """WebM or Ogg: demux slice by slice, decode each Opus packet with PyAV."""

    def __init__(self, demuxer: WebmDemuxer | OggDemuxer) -> None:
        self.sample_rate: int | None = OPUS_RATE
        self._demuxer = demuxer
        self._codec: av.AudioCodecContext | None = None
        self._skip = 0

    @property
    def header_bytes(self) -> int:
        return self._demuxer.header_bytes or 0

    @property
    def pending(self) -> int:
        return self._demuxer.pending

    def feed(self, data: bytes) -> Iterator[tuple[int, Samples]]:
        for packet in self._demuxer.feed(data):
            samples = self._decode(packet)
            if len(samples):
                yield packet.offset, samples

    def _decode(self, packet: Packet) -> Samples:
        if self._codec is None:
            codec = av.CodecContext.create("opus", "r")
            assert isinstance(codec, av.AudioCodecContext)
            if self._demuxer.extradata:
                codec.extradata = self._demuxer.extradata
            self._codec = codec
            self._skip = opus_preskip(self._demuxer.extradata)
            if opus_channels(self._demuxer.extradata) > 2:
                raise UnsupportedAudio("Opus with more than two channels is not supported")
        try:
            frames = self._codec.decode(av.Packet(packet.data))
        except av.error.FFmpegError as exc:
            raise BrokenStream("an Opus packet cannot be decoded") from exc
        parts = [np.asarray(f.to_ndarray(), dtype=np.float32).mean(axis=0, dtype=np.float32) for f in frames]
        samples: Samples = np.concatenate(parts) if parts else _EMPTY
        if self._skip:
            dropped = min(self._skip, len(samples))
            samples, self._skip = samples[dropped:], self._skip - dropped
        return samples


def make_decoder(fmt: LiveFormat, sample_rate: int, channels: int) -> _Decoder:
    """The decoder for a session's declared format."""
    if fmt == "pcm16":
        return Pcm16Decoder(sample_rate, channels)
    if fmt == "wav":
        return WavDecoder()
    return OpusDecoder(WebmDemuxer() if fmt == "webm" else OggDemuxer())


class AudioInput:
    """One session's input: bytes in, 16 kHz mono out, with the sync points a relay needs."""

    def __init__(self, fmt: LiveFormat, sample_rate: int = STT_SAMPLE_RATE, channels: int = 1) -> None:
        self.format = fmt
        self._decoder = make_decoder(fmt, sample_rate, channels)
        self._resampler: av.AudioResampler | None = None
        self._rate: int | None = None
        self.bytes_in = 0
        self.samples_out = 0
        self._sync: deque[SyncPoint] = deque()

    @property
    def header_bytes(self) -> int:
        """Leading input bytes a replay must start with."""
        return self._decoder.header_bytes

    @property
    def pending(self) -> int:
        """Input bytes of an unfinished unit (non-zero at the end: the stream broke off)."""
        return self._decoder.pending

    def feed(self, data: bytes) -> Samples:
        """Decode ``data``; returns the 16 kHz samples it completes."""
        self.bytes_in += len(data)
        out: list[Samples] = []
        for offset, samples in self._decoder.feed(data):
            self._sync.append(SyncPoint(self.samples_out + sum(len(p) for p in out), offset))
            out.append(self._resample(samples))
        if not out:
            return _EMPTY
        joined: Samples = np.concatenate(out) if len(out) > 1 else out[0]
        self.samples_out += len(joined)
        return joined

    @property
    def sync_points(self) -> int:
        """Input positions still remembered (bounded: older ones are forgotten as audio is dropped)."""
        return len(self._sync)

    def sync_point(self, sample: int) -> SyncPoint | None:
        """The latest sync point at or before ``sample``; older ones are forgotten."""
        best: SyncPoint | None = None
        while self._sync and self._sync[0].sample <= sample:
            best = self._sync.popleft()
        if best is not None:
            self._sync.appendleft(best)
        return best

    def _resample(self, samples: Samples) -> Samples:
        rate = self._decoder.sample_rate or STT_SAMPLE_RATE
        if rate == STT_SAMPLE_RATE:
            return samples.astype(np.float32, copy=False)
        if self._resampler is None or self._rate != rate:
            self._resampler = av.AudioResampler(format="flt", layout="mono", rate=STT_SAMPLE_RATE)
            self._rate = rate
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[None, :]), format="flt", layout="mono")
        frame.sample_rate = rate
        parts = [np.asarray(f.to_ndarray()[0], dtype=np.float32) for f in self._resampler.resample(frame)]
        return np.concatenate(parts) if parts else _EMPTY
