"""Decoding every container we accept, raw PCM, and the errors for bad audio."""

from __future__ import annotations

import io
import wave

import av
import numpy as np
import pytest

from voicestack_common.audio import (
    EmptyAudio,
    Pcm,
    TruncatedAudio,
    UnsupportedAudio,
    decode_audio,
    pcm16_to_pcm,
    resample,
)
from voicestack_common.encode import FORMATS, AudioEncoder, encode_audio, wav_header


def tone(seconds: float = 1.0, rate: int = 24_000, freq: float = 440.0) -> Pcm:
    t = np.arange(int(seconds * rate)) / rate
    return Pcm((0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate)


def pcm16_wav(pcm: Pcm, channels: int) -> bytes:
    """The stdlib's 16-bit PCM WAV of ``pcm`` copied to ``channels`` channels."""
    ints = (np.repeat(pcm.samples[:, None], channels, axis=1) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(pcm.sample_rate)
        out.writeframes(ints.tobytes())
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3", "opus", "webm", "aac", "m4a"])
def test_every_format_decodes_to_16k_mono_of_the_same_length(fmt: str) -> None:
    data = encode_audio(tone(2.0), fmt)
    pcm = decode_audio(data)
    assert pcm.sample_rate == 16_000
    assert pcm.samples.dtype == np.float32
    assert pcm.duration == pytest.approx(2.0, abs=0.08)
    # The tone survives the codec: its dominant frequency is still 440 Hz.
    spectrum = np.abs(np.fft.rfft(pcm.samples))
    assert np.fft.rfftfreq(len(pcm.samples), 1 / 16_000)[spectrum.argmax()] == pytest.approx(440, abs=5)


@pytest.mark.parametrize(("rate", "channels"), [(8_000, 1), (44_100, 2), (48_000, 1), (22_050, 2)])
def test_any_rate_and_channel_count_is_downmixed_and_resampled(rate: int, channels: int) -> None:
    pcm = decode_audio(pcm16_wav(tone(1.0, rate), channels))
    assert pcm.duration == pytest.approx(1.0, abs=0.01)
    assert float(np.abs(pcm.samples).max()) == pytest.approx(0.3, abs=0.02)


def test_raw_pcm16_reads_at_the_declared_rate() -> None:
    source = tone(0.5, 8_000)
    pcm = pcm16_to_pcm(source.to_pcm16(), 8_000)
    assert pcm.duration == pytest.approx(0.5)
    np.testing.assert_allclose(pcm.samples, source.samples, atol=1e-4)
    stereo = np.repeat(np.frombuffer(source.to_pcm16(), "<i2")[:, None], 2, axis=1).tobytes()
    assert pcm16_to_pcm(stereo, 8_000, channels=2).duration == pytest.approx(0.5)


def test_raw_pcm16_with_an_odd_length_is_truncated() -> None:
    with pytest.raises(TruncatedAudio):
        pcm16_to_pcm(b"\x00\x01\x02", 16_000)


def test_resample_keeps_duration() -> None:
    assert resample(tone(1.0, 24_000), 16_000).duration == pytest.approx(1.0, abs=0.01)


def test_empty_upload_is_empty_audio() -> None:
    with pytest.raises(EmptyAudio) as info:
        decode_audio(b"")
    assert info.value.code == "empty_audio"


def test_text_is_not_audio() -> None:
    with pytest.raises(UnsupportedAudio) as info:
        decode_audio(b"this is a text file, not audio at all\n" * 20)
    assert info.value.code == "unsupported_audio"
    assert info.value.status_code == 415


@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3", "webm", "m4a"])
def test_truncated_files_are_reported(fmt: str) -> None:
    data = encode_audio(tone(3.0), fmt)
    with pytest.raises(TruncatedAudio) as info:
        decode_audio(data[: len(data) // 2])
    assert info.value.code == "truncated_audio"


def test_streamed_wav_header_with_unknown_length_decodes() -> None:
    body = tone(1.0).to_pcm16()
    assert decode_audio(wav_header(24_000, None) + body).duration == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("fmt", sorted(set(FORMATS) - {"pcm"}))
def test_streaming_encoder_output_decodes_to_the_whole_input(fmt: str) -> None:
    source = tone(2.0)
    encoder = AudioEncoder(fmt, source.sample_rate)
    step = source.sample_rate // 5
    data = b"".join(encoder.encode(source.samples[i : i + step]) for i in range(0, len(source.samples), step))
    data += encoder.finish()
    assert decode_audio(data).duration == pytest.approx(2.0, abs=0.08)


def test_streaming_mp3_yields_bytes_before_the_end() -> None:
    source = tone(2.0)
    encoder = AudioEncoder("mp3", source.sample_rate)
    first = encoder.encode(source.samples[:12_000])
    assert len(first) > 0


def test_wav_from_a_pipe_with_a_placeholder_length_decodes() -> None:
    """espeak-ng --stdout (and other streaming writers) cannot seek back to write the length."""
    body = tone(1.0).to_pcm16()
    header = bytearray(wav_header(24_000, len(body)))
    header[40:44] = (0x7FFFF000).to_bytes(4, "little")
    assert decode_audio(bytes(header) + body).duration == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize(("rate", "channels"), [(16_000, 1), (24_000, 1), (44_100, 2)])
def test_pcm16_wav_skips_ffmpeg_and_matches_it(rate: int, channels: int, monkeypatch: pytest.MonkeyPatch) -> None:
    data = pcm16_wav(tone(1.0, rate), channels)
    with monkeypatch.context() as patch:
        patch.setattr("voicestack_common.audio._pcm16_wav", lambda *a: None)
        through_ffmpeg = decode_audio(data)
    monkeypatch.setattr("voicestack_common.audio.av.open", lambda *a, **k: pytest.fail("FFmpeg was used"))
    fast = decode_audio(data)
    assert fast.sample_rate == 16_000
    assert len(fast.samples) == pytest.approx(len(through_ffmpeg.samples), abs=2)
    n = min(len(fast.samples), len(through_ffmpeg.samples))
    np.testing.assert_allclose(fast.samples[100 : n - 100], through_ffmpeg.samples[100 : n - 100], atol=2e-3)


def test_a_wav_that_is_not_pcm16_still_goes_through_ffmpeg() -> None:
    data = encode_audio(tone(1.0, 16_000), "wav")  # our own encoder writes PCM16
    as_float = io.BytesIO()
    with av.open(as_float, "w", format="wav") as out:
        stream = out.add_stream("pcm_f32le", rate=16_000, layout="mono")
        frame = av.AudioFrame.from_ndarray(tone(1.0, 16_000).samples[None, :], format="flt", layout="mono")
        frame.sample_rate = 16_000
        for packet in (*stream.encode(frame), *stream.encode(None)):
            out.mux(packet)
    assert decode_audio(as_float.getvalue()).duration == pytest.approx(decode_audio(data).duration, abs=0.01)
