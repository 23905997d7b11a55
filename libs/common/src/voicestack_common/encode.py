"""Encode mono float32 PCM to the formats our APIs serve, whole or as a stream.

``AudioEncoder`` accepts samples piece by piece and returns the bytes that are
ready after each piece, so a streamed response can send them at once. WAV and
raw PCM are written by hand (a streamed WAV header states an unknown length,
which players accept; ``finalize_wav`` writes the real length in once the
stream is complete); the compressed formats go through PyAV into a
non-seekable sink, the way FFmpeg writes to a pipe. The muxer options below
are chosen so that every container hands out bytes within a fraction of a
second of audio, not at its default page or fragment size (seconds).
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import numpy as np
from av.audio.stream import AudioStream

from voicestack_common.audio import Pcm, Samples, resample


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """How one output format is muxed and labelled."""

    name: str
    media_type: str
    container: str | None = None
    codec: str | None = None
    codec_rate: int | None = None
    options: tuple[tuple[str, str], ...] = ()
    bit_rate: int | None = None
    stream_options: tuple[tuple[str, str], ...] = ()
    """Muxer options for streamed output only (they override ``options``)."""


# Streamed, Ogg and WebM would buffer about a second (a page, a cluster) and
# fragmented MP4 the whole stream before writing anything: these limits make
# them hand out bytes every 100-200 ms of audio, at a few percent of container
# overhead. Whole-buffer encodes keep the defaults (one fragment, which also
# lets a reader tell a truncated file from a short one).
_OGG_STREAMING = (("page_duration", "100000"),)  # microseconds
_WEBM_STREAMING = (("cluster_time_limit", "200"),)  # milliseconds
# default_base_moof is what browsers' Media Source Extensions expect of each fragment.
_MP4_STREAMING = (("movflags", "frag_keyframe+empty_moov+default_base_moof"), ("frag_duration", "200000"))

FORMATS: dict[str, AudioFormat] = {
    f.name: f
    for f in (
        AudioFormat("wav", "audio/wav"),
        AudioFormat("pcm", "audio/pcm"),
        # LAME's default for 24 kHz mono is 32 kb/s, audibly thin for speech.
        AudioFormat("mp3", "audio/mpeg", "mp3", "libmp3lame", bit_rate=64_000),
        AudioFormat("flac", "audio/flac", "flac", "flac"),
        # Opus only runs at 48 kHz; OpenAI's "opus" is Ogg/Opus.
        AudioFormat("opus", "audio/ogg", "ogg", "libopus", 48_000, stream_options=_OGG_STREAMING),
        AudioFormat("ogg", "audio/ogg", "ogg", "libopus", 48_000, stream_options=_OGG_STREAMING),
        AudioFormat("webm", "audio/webm", "webm", "libopus", 48_000, stream_options=_WEBM_STREAMING),
        AudioFormat("aac", "audio/aac", "adts", "aac", bit_rate=64_000),
        # A fragmented MP4 needs no seek back to write its index.
        AudioFormat(
            "m4a", "audio/mp4", "mp4", "aac", None, (("movflags", "frag_keyframe+empty_moov"),), 64_000, _MP4_STREAMING
        ),
    )
}


WAV_HEADER_BYTES = 44


def wav_header(sample_rate: int, data_bytes: int | None) -> bytes:
    """A 44-byte PCM16 mono RIFF header; ``None`` length writes the streaming form."""
    size = 0xFFFFFFFF if data_bytes is None else data_bytes
    riff = 0xFFFFFFFF if data_bytes is None else 36 + data_bytes
    return (
        b"RIFF"
        + struct.pack("<I", riff)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, sample_rate * 2, 2, 16)
        + b"data"
        + struct.pack("<I", size)
    )


def finalize_wav(data: bytes) -> bytes:
    """A complete streamed WAV (from ``wav_header(rate, None)``) with its real lengths written in."""
    if len(data) < 44 or data[:4] != b"RIFF" or data[36:40] != b"data":
        raise ValueError("not a WAV file with a 44-byte PCM header")
    body = len(data) - 44
    return data[:4] + struct.pack("<I", 36 + body) + data[8:40] + struct.pack("<I", body) + data[44:]


class _Sink(io.RawIOBase):
    """A write-only, non-seekable file object that hands written bytes back."""

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def seekable(self) -> bool:
        return False

    def drain(self) -> bytes:
        out, self._parts = b"".join(self._parts), []
        return out


class _SeekableSink(io.BytesIO):
    """An in-memory file the muxer may seek in; its content is read once, at the end."""

    def drain(self) -> bytes:
        return b""

    def seekable(self) -> bool:
        return True


class AudioEncoder:
    """Incremental encoder of mono float32 PCM at a fixed input rate."""

    def __init__(self, fmt: str, sample_rate: int, *, streaming: bool = True) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown audio format {fmt!r}")
        self.format = FORMATS[fmt]
        self.sample_rate = sample_rate
        self._streaming = streaming
        self._header_sent = False
        self._held: list[bytes] = []  # a whole-file WAV waits for finish() to know its length
        self._pts = 0
        self._container: av.container.OutputContainer | None = None
        if self.format.container is not None:
            # A whole-buffer encode gets a seekable sink, so muxers write their
            # headers in full (MP3's Xing frame count, MP4's index).
            self._sink: _Sink | _SeekableSink = _Sink() if streaming else _SeekableSink()
            options = dict(self.format.options)
            if streaming:
                options.update(self.format.stream_options)
            self._container = av.open(self._sink, mode="w", format=self.format.container, options=options)
            rate = self.format.codec_rate or sample_rate
            stream = self._container.add_stream(self.format.codec or "", rate=rate, layout="mono")
            if not isinstance(stream, AudioStream):
                raise ValueError(f"{self.format.codec} is not an audio codec")
            self._stream = stream
            if self.format.bit_rate is not None:
                stream.codec_context.bit_rate = self.format.bit_rate
            self._resampler = av.AudioResampler(format=stream.codec_context.format.name, layout="mono", rate=rate)

    @property
    def media_type(self) -> str:
        """The Content-Type to serve the bytes with."""
        return self.format.media_type

    def encode(self, samples: Samples) -> bytes:
        """Encode the next samples; returns whatever bytes are ready now."""
        if self._container is None:
            return self._raw(samples)
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples, dtype=np.float32)[None, :], format="flt", layout="mono"
        )
        frame.sample_rate = self.sample_rate
        frame.pts = self._pts
        frame.time_base = Fraction(1, self.sample_rate)
        self._pts += len(samples)
        for resampled in self._resampler.resample(frame):
            for packet in self._stream.encode(resampled):
                self._container.mux(packet)
        return self._sink.drain()

    def finish(self) -> bytes:
        """Flush the codec and the container trailer."""
        if self._container is None:
            if self.format.name == "wav" and not self._streaming:
                body, self._held = b"".join(self._held), []
                return wav_header(self.sample_rate, len(body)) + body
            return b"" if self._header_sent or not self._streaming else self._raw(np.zeros(0, np.float32))
        for resampled in self._resampler.resample(None):
            for packet in self._stream.encode(resampled):
                self._container.mux(packet)
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()
        if isinstance(self._sink, _SeekableSink):
            return self._sink.getvalue()
        return self._sink.drain()

    def _raw(self, samples: Samples) -> bytes:
        body = Pcm(samples, self.sample_rate).to_pcm16()
        if self.format.name != "wav":
            return body
        if not self._streaming:
            self._held.append(body)
            return b""
        if not self._header_sent:
            self._header_sent = True
            return wav_header(self.sample_rate, None) + body
        return body


def encode_audio(pcm: Pcm, fmt: str, sample_rate: int | None = None) -> bytes:
    """Encode a whole buffer (with an exact WAV header), optionally resampled first."""
    if sample_rate is not None:
        pcm = resample(pcm, sample_rate)
    encoder = AudioEncoder(fmt, pcm.sample_rate, streaming=False)
    return encoder.encode(pcm.samples) + encoder.finish()
