"""Encode mono float32 PCM to the formats our APIs serve, whole or as a stream.

``AudioEncoder`` accepts samples piece by piece and returns the bytes that are
ready after each piece, so a streamed response can send them at once. WAV and
raw PCM are written by hand (a streamed WAV header states an unknown length,
which players accept); the compressed formats go through PyAV into a
non-seekable sink, the way FFmpeg writes to a pipe.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

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


FORMATS: dict[str, AudioFormat] = {
    f.name: f
    for f in (
        AudioFormat("wav", "audio/wav"),
        AudioFormat("pcm", "audio/pcm"),
        AudioFormat("mp3", "audio/mpeg", "mp3", "libmp3lame"),
        AudioFormat("flac", "audio/flac", "flac", "flac"),
        # Opus only runs at 48 kHz; OpenAI's "opus" is Ogg/Opus.
        AudioFormat("opus", "audio/ogg", "ogg", "libopus", 48_000),
        AudioFormat("ogg", "audio/ogg", "ogg", "libopus", 48_000),
        AudioFormat("webm", "audio/webm", "webm", "libopus", 48_000),
        AudioFormat("aac", "audio/aac", "adts", "aac"),
        # A fragmented MP4 needs no seek back to write its index.
        AudioFormat("m4a", "audio/mp4", "mp4", "aac", None,
                    (("movflags", "frag_keyframe+empty_moov"),)),
    )
}


def wav_header(sample_rate: int, data_bytes: int | None) -> bytes:
    """A 44-byte PCM16 mono RIFF header; ``None`` length writes the streaming form."""
    size = 0xFFFFFFFF if data_bytes is None else data_bytes
    riff = 0xFFFFFFFF if data_bytes is None else 36 + data_bytes
    return (b"RIFF" + struct.pack("<I", riff) + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, sample_rate * 2, 2, 16)
            + b"data" + struct.pack("<I", size))


class _Sink:
    """A write-only, non-seekable file object that hands written bytes back."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
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


class AudioEncoder:
    """Incremental encoder of mono float32 PCM at a fixed input rate."""

    def __init__(self, fmt: str, sample_rate: int, *, streaming: bool = True) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown audio format {fmt!r}")
        self.format = FORMATS[fmt]
        self.sample_rate = sample_rate
        self._streaming = streaming
        self._header_sent = False
        self._pts = 0
        self._container: av.container.OutputContainer | None = None
        if self.format.container is not None:
            # A whole-buffer encode gets a seekable sink, so muxers write their
            # headers in full (MP3's Xing frame count, MP4's index).
            self._sink: _Sink | _SeekableSink = _Sink() if streaming else _SeekableSink()
            self._container = av.open(self._sink, mode="w", format=self.format.container,  # type: ignore[call-overload]
                                      options=dict(self.format.options))
            rate = self.format.codec_rate or sample_rate
            self._stream = self._container.add_stream(self.format.codec, rate=rate, layout="mono")
            fmt_name = self._stream.codec_context.format.name
            self._resampler = av.AudioResampler(format=fmt_name, layout="mono", rate=rate)

    @property
    def media_type(self) -> str:
        """The Content-Type to serve the bytes with."""
        return self.format.media_type

    def encode(self, samples: Samples) -> bytes:
        """Encode the next samples; returns whatever bytes are ready now."""
        if self._container is None:
            return self._raw(samples)
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples, dtype=np.float32)[None, :], format="flt", layout="mono")
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
            return b"" if self._header_sent or not self._streaming else self._raw(np.zeros(0, np.float32))
        for resampled in self._resampler.resample(None):
            for packet in self._stream.encode(resampled):
                self._container.mux(packet)
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()
        return self._sink.drain() if self._streaming else self._sink.getvalue()

    def _raw(self, samples: Samples) -> bytes:
        body = Pcm(samples, self.sample_rate).to_pcm16()
        if self.format.name == "wav" and not self._header_sent:
            self._header_sent = True
            return wav_header(self.sample_rate, None if self._streaming else len(body)) + body
        return body


def encode_audio(pcm: Pcm, fmt: str, sample_rate: int | None = None) -> bytes:
    """Encode a whole buffer (with an exact WAV header), optionally resampled first."""
    if sample_rate is not None:
        pcm = resample(pcm, sample_rate)
    encoder = AudioEncoder(fmt, pcm.sample_rate, streaming=False)
    return encoder.encode(pcm.samples) + encoder.finish()
