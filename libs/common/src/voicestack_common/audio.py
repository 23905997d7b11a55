"""PCM buffers, decoding any container to mono float32, and encoding back.

Every service normalises audio here, once, at its edge: PyAV (FFmpeg bundled
in the wheel) reads wav, flac, mp3, ogg/opus, webm/opus, m4a/aac and more;
raw little-endian PCM16 is read with its declared rate. A 16-bit PCM WAV, what
most clients upload, skips FFmpeg's demuxer: the stdlib ``wave`` reader and numpy
do it in well under a millisecond where PyAV takes 10-20 ms per 5 s.
"""

from __future__ import annotations

import io
import struct
import wave
from dataclasses import dataclass
from typing import IO

import av
import numpy as np
import numpy.typing as npt

from voicestack_common.errors import CLOSE_INVALID_DATA, ClientError, InvalidRequest, UnsupportedMediaType

Samples = npt.NDArray[np.float32]

STT_SAMPLE_RATE = 16_000
# A decoded stream shorter than its container's declared duration by more than
# this is reported as truncated rather than silently transcribed in part.
_TRUNCATION_SLACK_S = 0.25
_TRUNCATION_SLACK_RATIO = 0.05
_WAV_UNKNOWN_SIZE = 0x7FFF0000


class AudioError(ClientError):
    """The upload is not audio we can read."""

    default_code = "invalid_audio"
    close_code = CLOSE_INVALID_DATA


class EmptyAudio(AudioError):
    """No bytes, or no samples."""

    default_code = "empty_audio"


class UnsupportedAudio(AudioError, UnsupportedMediaType):
    """Not a container or codec FFmpeg recognises."""

    default_code = "unsupported_audio"


class TruncatedAudio(AudioError):
    """The container declares more audio than the bytes hold."""

    default_code = "truncated_audio"


@dataclass(frozen=True, slots=True)
class Pcm:
    """Mono float32 samples in [-1, 1] at ``sample_rate``."""

    samples: Samples
    sample_rate: int

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.samples) / self.sample_rate

    def to_pcm16(self) -> bytes:
        """Little-endian signed 16-bit bytes."""
        clipped = np.clip(self.samples, -1.0, 1.0)
        return (clipped * 32767.0).astype("<i2").tobytes()


def pcm16_to_pcm(data: bytes, sample_rate: int, channels: int = 1) -> Pcm:
    """Read raw little-endian PCM16 (interleaved when ``channels`` > 1)."""
    if not data:
        raise EmptyAudio("the request body is empty")
    if not 1000 <= sample_rate <= 384_000:
        raise InvalidRequest(f"sample_rate {sample_rate} is out of range 1000..384000", code="invalid_sample_rate")
    frame = 2 * channels
    if len(data) % frame:
        raise TruncatedAudio(f"raw PCM16 length {len(data)} is not a multiple of {frame} bytes")
    ints = np.frombuffer(data, dtype="<i2").reshape(-1, channels)
    samples = (ints.astype(np.float32) / 32768.0).mean(axis=1).astype(np.float32)
    return Pcm(samples, sample_rate)


def resample(pcm: Pcm, rate: int) -> Pcm:
    """Resample with FFmpeg's resampler (no-op when the rate already matches)."""
    if pcm.sample_rate == rate or len(pcm.samples) == 0:
        return pcm if pcm.sample_rate == rate else Pcm(pcm.samples, rate)
    frame = av.AudioFrame.from_ndarray(pcm.samples[None, :], format="flt", layout="mono")
    frame.sample_rate = pcm.sample_rate
    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
    out = [f.to_ndarray()[0] for f in (*resampler.resample(frame), *resampler.resample(None))]
    return Pcm(np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32), rate)


def _mono(frame: av.AudioFrame) -> Samples:
    planes = np.asarray(frame.to_ndarray(), dtype=np.float32)
    mono: Samples = planes[0] if planes.shape[0] == 1 else planes.mean(axis=0, dtype=np.float32)
    return mono


def _wav_declared_bytes(head: bytes) -> tuple[int, int] | None:
    """(declared data size, data offset) of a RIFF/WAVE header, when it states one."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos = 12
    while pos + 8 <= len(head):
        chunk, size = head[pos : pos + 4], struct.unpack("<I", head[pos + 4 : pos + 8])[0]
        if chunk == b"data":
            # Streaming writers leave a placeholder (0, 0xFFFFFFFF, or espeak-ng's
            # 0x7FFFF000 on stdout): the length is unknown, not short.
            return None if size == 0 or size >= _WAV_UNKNOWN_SIZE else (size, pos + 8)
        pos += 8 + size + (size & 1)
    return None


def _pcm16_wav(data: bytes, sample_rate: int) -> Pcm | None:
    """A complete 16-bit PCM WAV read without FFmpeg; ``None`` for anything else (FFmpeg reads it)."""
    try:
        with wave.open(io.BytesIO(data)) as reader:
            channels, width, rate = reader.getnchannels(), reader.getsampwidth(), reader.getframerate()
            frames = reader.readframes(reader.getnframes())
    except (wave.Error, EOFError):
        return None
    if width != 2 or not frames or not 1000 <= rate <= 384_000 or len(frames) % (2 * channels):
        return None
    return resample(pcm16_to_pcm(frames, rate, channels), sample_rate)


def decode_audio(source: bytes | IO[bytes], sample_rate: int = STT_SAMPLE_RATE) -> Pcm:
    """Decode any FFmpeg-readable container to mono float32 at ``sample_rate``."""
    data = source if isinstance(source, bytes) else source.read()
    if not data:
        raise EmptyAudio("the uploaded file is empty")
    declared_wav = _wav_declared_bytes(data[:4096])
    if declared_wav and declared_wav[1] + declared_wav[0] > len(data):
        raise TruncatedAudio(
            f"WAV header declares {declared_wav[0]} data bytes, the file holds {len(data) - declared_wav[1]}"
        )
    if declared_wav:
        fast = _pcm16_wav(data, sample_rate)
        if fast is not None:
            return fast
    try:
        container = av.open(io.BytesIO(data), mode="r")
    except EOFError as exc:
        raise TruncatedAudio("the file ends before its header does") from exc
    except (av.error.FFmpegError, ValueError) as exc:
        raise UnsupportedAudio("the upload is not a recognised audio file") from exc
    with container:
        if not container.streams.audio:
            raise UnsupportedAudio("the file has no audio stream")
        stream = container.streams.audio[0]
        if stream.codec_context is None or stream.codec_context.name in ("", "none"):
            raise UnsupportedAudio("the file's audio codec cannot be decoded", code="unsupported_codec")
        # Resample per channel and average ourselves: FFmpeg's downmix pans at -3 dB,
        # which makes identical channels 1.4x louder (and can push them past full scale).
        resampler = av.AudioResampler(format="fltp", layout=stream.layout, rate=sample_rate)
        chunks: list[Samples] = []
        try:
            for frame in container.decode(stream):
                chunks.extend(_mono(f) for f in resampler.resample(frame))
        except (av.error.FFmpegError, EOFError) as exc:
            if not chunks:
                raise UnsupportedAudio("the audio stream cannot be decoded", code="unsupported_codec") from exc
            raise TruncatedAudio("the audio stream breaks off before its end") from exc
        chunks.extend(_mono(f) for f in resampler.resample(None))
        declared = container.duration / 1_000_000 if container.duration else None
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if len(samples) == 0:
        raise EmptyAudio("the file holds no audio samples")
    pcm = Pcm(samples, sample_rate)
    if declared and declared - pcm.duration > max(_TRUNCATION_SLACK_S, declared * _TRUNCATION_SLACK_RATIO):
        raise TruncatedAudio(f"the file declares {declared:.2f} s of audio but holds {pcm.duration:.2f} s")
    return pcm
