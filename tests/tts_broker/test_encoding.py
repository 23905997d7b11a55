"""The streaming encoders hand out bytes as audio arrives, in every container, and the result decodes whole."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from voicestack_common.audio import Pcm, decode_audio
from voicestack_common.encode import FORMATS, AudioEncoder, encode_audio, finalize_wav, wav_header


def tone(seconds: float, rate: int = 24_000) -> Pcm:
    t = np.arange(int(seconds * rate)) / rate
    return Pcm((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_format_yields_bytes_for_each_second_of_audio(fmt: str) -> None:
    encoder = AudioEncoder(fmt, 24_000)
    second = tone(1.0).samples
    sizes = [len(encoder.encode(second)) for _ in range(3)]
    tail = encoder.finish()
    # Ogg pages, WebM clusters and MP4 fragments are cut small enough that nothing waits for the end.
    assert all(size > 0 for size in sizes), sizes
    assert len(tail) < max(sizes), (sizes, len(tail))


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac", "webm", "m4a"])
def test_a_stream_cut_in_sentences_decodes_to_the_whole(fmt: str) -> None:
    encoder = AudioEncoder(fmt, 24_000)
    parts = [encoder.encode(tone(seconds).samples) for seconds in (1.3, 0.7, 2.1)]
    data = b"".join(parts) + encoder.finish()
    assert decode_audio(data).duration == pytest.approx(4.1, abs=0.1)


def test_finalize_wav_writes_the_real_length_into_a_streamed_header() -> None:
    encoder = AudioEncoder("wav", 24_000)
    streamed = encoder.encode(tone(0.5).samples) + encoder.encode(tone(0.25).samples) + encoder.finish()
    assert struct.unpack("<I", streamed[40:44])[0] == 0xFFFFFFFF
    whole = finalize_wav(streamed)
    assert struct.unpack("<II", whole[4:8] + whole[40:44]) == (36 + len(whole) - 44, len(whole) - 44)
    assert finalize_wav(whole) == whole
    assert whole[44:] == streamed[44:]
    with pytest.raises(ValueError, match="WAV"):
        finalize_wav(b"ID3" + bytes(50))


def test_a_whole_file_wav_made_in_pieces_has_an_exact_header() -> None:
    encoder = AudioEncoder("wav", 24_000, streaming=False)
    assert encoder.encode(tone(0.5).samples) == b""
    assert encoder.encode(tone(0.5).samples) == b""
    data = encoder.finish()
    assert data[:44] == wav_header(24_000, 48_000)
    assert encode_audio(tone(1.0), "wav")[:44] == wav_header(24_000, 48_000)


def test_mp3_is_encoded_at_64_kbps() -> None:
    data = encode_audio(tone(4.0), "mp3")
    assert len(data) == pytest.approx(4 * 64_000 / 8, rel=0.1)
