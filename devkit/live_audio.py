"""Live-stream fixtures: sentences with pauses, and MediaRecorder-like WebM/Ogg slices made with PyAV."""

from __future__ import annotations

from dataclasses import dataclass

import av
import numpy as np

from devkit.speech import espeak_speech, kokoro_speech
from voicestack_common.audio import STT_SAMPLE_RATE, Pcm, decode_audio, resample

SENTENCES = (
    "Please call me back tomorrow morning.",
    "The meeting starts at noon.",
    "Bring the blue folder with you.",
)
LEAD_S = 0.5
PAUSE_S = 1.2


@dataclass(frozen=True)
class Speech:
    """Sentences with silence between them, at 16 kHz, and where each sentence lies."""

    pcm: Pcm
    sentences: tuple[str, ...]
    spans: tuple[tuple[float, float], ...]


def speech_with_pauses(
    sentences: tuple[str, ...] = SENTENCES, *, engine: str = "kokoro", voice: str = "jm_kumo", pause_s: float = PAUSE_S
) -> Speech:
    """Each sentence spoken on its own, ``pause_s`` of silence between them."""
    parts = [np.zeros(int(LEAD_S * STT_SAMPLE_RATE), np.float32)]
    spans = []
    position = LEAD_S
    for text in sentences:
        if engine == "kokoro":
            clip = resample(kokoro_speech(text, voice=voice), STT_SAMPLE_RATE)
        else:
            clip = decode_audio(espeak_speech(text, voice=voice))
        samples = _trim(clip.samples)
        parts.append(samples)
        spans.append((position, position + len(samples) / STT_SAMPLE_RATE))
        position += len(samples) / STT_SAMPLE_RATE + pause_s
        parts.append(np.zeros(int(pause_s * STT_SAMPLE_RATE), np.float32))
    return Speech(Pcm(np.concatenate(parts), STT_SAMPLE_RATE), sentences, tuple(spans))


def _trim(samples: np.ndarray) -> np.ndarray:
    """Drop the engine's own leading and trailing silence, so the spans are where the voice is."""
    loud = np.flatnonzero(np.abs(samples) > 0.01)
    return samples[loud[0] : loud[-1] + 1] if len(loud) else samples


def pcm16_slices(pcm: Pcm, slice_ms: int = 100, *, rate: int = STT_SAMPLE_RATE, channels: int = 1) -> list[bytes]:
    """Raw PCM16 frames of ``slice_ms`` each, at ``rate`` with ``channels`` identical channels."""
    audio = resample(pcm, rate)
    data = np.repeat(audio.samples[:, None], channels, axis=1).reshape(-1)
    raw = Pcm(data, rate).to_pcm16()
    step = rate * slice_ms // 1000 * 2 * channels
    return [raw[i : i + step] for i in range(0, len(raw), step)]


class _Sink:
    """A write-only, non-seekable file: the muxer streams as MediaRecorder does (unknown sizes)."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> int:
        self.data += data
        return len(data)

    def take(self) -> bytes:
        out = bytes(self.data)
        self.data.clear()
        return out


def recorder_slices(pcm: Pcm, container: str = "webm", timeslice_ms: int = 250) -> list[bytes]:
    """Opus in WebM or Ogg, handed out every ``timeslice_ms`` of audio, like ``MediaRecorder.start(250)``."""
    audio = resample(pcm, 48_000)
    sink = _Sink()
    # Small clusters / pages, so each slice carries the audio of its own time span.
    options = {"live": "1", "cluster_time_limit": "100"} if container == "webm" else {"page_duration": "100000"}
    out = av.open(sink, "w", format=container, options=options)  # type: ignore[arg-type]
    stream = out.add_stream("libopus", rate=48_000, layout="mono")
    stream.bit_rate = 32_000
    slices: list[bytes] = []
    frame_size = 960
    per_slice = 48 * timeslice_ms
    for start in range(0, len(audio.samples), frame_size):
        chunk = audio.samples[start : start + frame_size]
        if len(chunk) < frame_size:
            chunk = np.pad(chunk, (0, frame_size - len(chunk)))
        frame = av.AudioFrame.from_ndarray(chunk[None, :].astype(np.float32), format="flt", layout="mono")
        frame.sample_rate = 48_000
        frame.pts = start
        for packet in stream.encode(frame):
            out.mux(packet)
        if (start + frame_size) // per_slice > start // per_slice:
            slices.append(sink.take())
    for packet in stream.encode(None):
        out.mux(packet)
    out.close()
    slices.append(sink.take())
    return [s for s in slices if s]
