"""G.711 and output encoding for Realtime sessions, checked against FFmpeg's own G.711 codecs."""

from __future__ import annotations

import av
import numpy as np
import pytest

from gateway.realtime import codecs


def _ffmpeg(codec: str, pcm16: bytes) -> bytes:
    context = av.CodecContext.create(codec, "w")
    context.sample_rate, context.layout, context.format = 8000, "mono", "s16"
    frame = av.AudioFrame.from_ndarray(np.frombuffer(pcm16, "<i2")[None, :], format="s16", layout="mono")
    frame.sample_rate = 8000
    return b"".join(bytes(packet) for packet in (*context.encode(frame), *context.encode(None)))


def _ffmpeg_decode(codec: str, data: bytes) -> bytes:
    context = av.CodecContext.create(codec.replace("pcm_", "pcm_"), "r")
    context.sample_rate, context.layout = 8000, "mono"
    packet = av.Packet(data)
    return b"".join(f.to_ndarray().astype("<i2").tobytes() for f in context.decode(packet))


@pytest.mark.parametrize(("fmt", "codec"), [("g711_ulaw", "pcm_mulaw"), ("g711_alaw", "pcm_alaw")])
def test_g711_matches_ffmpeg(fmt: codecs.RealtimeFormat, codec: str) -> None:
    """Decoding is exact; encoding rounds like the ITU reference (FFmpeg rounds to nearer levels at a
    few decision points), so every sample lands on FFmpeg's level or the one next to it."""
    every_code = bytes(range(256))
    assert codecs.to_pcm16(every_code, fmt) == _ffmpeg_decode(codec, every_code)
    every_sample = np.arange(-32768, 32768, dtype="<i2").tobytes()
    levels = np.frombuffer(codecs.to_pcm16(every_code, fmt), "<i2")
    rank = np.argsort(np.argsort(levels, kind="stable"), kind="stable")
    ours = rank[np.frombuffer(codecs.from_pcm16(every_sample, fmt), np.uint8)]
    theirs = rank[np.frombuffer(_ffmpeg(codec, every_sample), np.uint8)]
    assert np.abs(ours.astype(int) - theirs).max() <= 1
    assert np.mean(ours == theirs) > 0.98


def test_output_encoder_resamples_chunks_to_8k_without_losing_samples() -> None:
    tone = (np.sin(np.arange(24_000) * 2 * np.pi * 440 / 24_000) * 10_000).astype("<i2").tobytes()
    encoder = codecs.OutputEncoder("g711_ulaw")
    out = b"".join(encoder.encode(tone[i : i + 4801]) for i in range(0, len(tone), 4801)) + encoder.flush()
    assert abs(len(out) - 8000) <= 40  # one second at 8 kHz, one byte a sample
    decoded = np.frombuffer(codecs.to_pcm16(out, "g711_ulaw"), "<i2").astype(np.float32)
    spectrum = np.abs(np.fft.rfft(decoded[400:7600]))
    assert abs(np.argmax(spectrum) * 8000 / 7200 - 440) < 5


def test_durations() -> None:
    assert codecs.duration_ms(48_000, "pcm16") == 1000
    assert codecs.duration_ms(8_000, "g711_alaw") == 1000
    assert codecs.byte_offset(500, "pcm16") == 24_000
