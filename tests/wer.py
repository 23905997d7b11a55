"""The word-error-rate set: generated utterances (espeak-ng and Kokoro voices, 8/16/44.1 kHz,
clean and with noise at 20 and 10 dB SNR), cached as WAV, and the WER itself.

``bench/bench_wer.py`` runs every engine configuration over the whole set; the tests
run a small fixed subset so that an accuracy regression fails the test command.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.speech import TEST_CACHE, espeak_speech, kokoro_speech, words
from voicestack_common.audio import Pcm, decode_audio, resample
from voicestack_common.encode import encode_audio

SENTENCES = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It is easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
)
VOICES = (
    ("espeak", "en-us"),
    ("kokoro", "jf_alpha"),
    ("espeak", "en-gb"),
    ("kokoro", "jm_kumo"),
    ("espeak", "en-us+f3"),
    ("kokoro", "jf_nezumi"),
    ("espeak", "en-gb-scotland"),
    ("kokoro", "jf_gongitsune"),
)
RATES = (8_000, 16_000, 44_100)
SNRS: tuple[float | None, ...] = (None, 20.0, 10.0)  # None: clean
SET_SIZE = 36
# The tests' subset: every rate, clean and noisy, both synthesizers (fixed, so the bounds hold).
SUBSET = (9, 10, 11, 13, 17, 21)


@dataclass(frozen=True, slots=True)
class Utterance:
    """One clip of the set: what was said, by whom, and how it was degraded."""

    index: int
    text: str
    voice: str
    sample_rate: int
    snr_db: float | None

    @property
    def condition(self) -> str:
        noise = "clean" if self.snr_db is None else f"{self.snr_db:g} dB"
        return f"{self.sample_rate / 1000:g} kHz, {noise}"


def utterance(index: int) -> Utterance:
    """The ``index``-th utterance: every rate x noise pair appears four times, voices rotate."""
    rate, snr = RATES[index % 3], SNRS[(index // 3) % 3]
    engine, voice = VOICES[index % len(VOICES)]
    text = SENTENCES[index % len(SENTENCES)]
    if index % 4 == 3:  # some clips hold two sentences with a pause between them
        text = f"{text} {SENTENCES[(index + 5) % len(SENTENCES)]}"
    return Utterance(index, text, f"{engine}:{voice}", rate, snr)


def wer_set(size: int = SET_SIZE) -> list[Utterance]:
    """The whole set (or its first ``size`` clips)."""
    return [utterance(i) for i in range(size)]


def _speak(engine: str, voice: str, sentence: str) -> Pcm:
    if engine == "kokoro":
        return kokoro_speech(sentence, voice=voice)
    return decode_audio(espeak_speech(sentence, voice=voice), sample_rate=22_050)


def _silence(seconds: float, rate: int) -> np.ndarray:
    return np.zeros(round(seconds * rate), np.float32)


def clip_wav(item: Utterance) -> bytes:
    """The clip as the WAV a client would upload (cached): silence around the speech, noise over all."""
    key = hashlib.sha256(repr(item).encode()).hexdigest()[:16]
    path = TEST_CACHE / "wer" / f"{item.index:02d}-{key}.wav"
    if path.is_file():
        return path.read_bytes()
    engine, voice = item.voice.split(":", 1)
    rng = np.random.default_rng(item.index)
    parts: list[np.ndarray] = [_silence(float(rng.uniform(0.3, 1.2)), item.sample_rate)]
    for n, sentence in enumerate(_sentences(item.text)):
        if n:
            parts.append(_silence(float(rng.uniform(0.6, 1.4)), item.sample_rate))
        parts.append(resample(_speak(engine, voice, sentence), item.sample_rate).samples)
    parts.append(_silence(0.5, item.sample_rate))
    speech = np.concatenate(parts).astype(np.float32)
    peak = float(np.abs(speech).max()) or 1.0
    speech = speech * (0.5 / peak)
    if item.snr_db is not None:
        speech = add_noise(speech, item.snr_db, rng)
    data = encode_audio(Pcm(speech, item.sample_rate), "wav")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return data


def add_noise(speech: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """White noise at ``snr_db`` below the speech's power (measured where there is speech)."""
    active = speech[np.abs(speech) > 0.01 * float(np.abs(speech).max())]
    power = float(np.mean(active**2)) if len(active) else 1e-6
    noise = rng.normal(0.0, np.sqrt(power / 10 ** (snr_db / 10)), len(speech)).astype(np.float32)
    return np.clip(speech + noise, -1.0, 1.0).astype(np.float32)


def _sentences(text: str) -> list[str]:
    return [s.strip() + "." for s in text.split(".") if s.strip()]


def noise_only_wav(seconds: float = 4.0, rate: int = 16_000) -> bytes:
    """Noise and nothing else: VAD must turn it into an empty transcript."""
    rng = np.random.default_rng(99)
    return encode_audio(Pcm(rng.normal(0, 0.05, round(seconds * rate)).astype(np.float32), rate), "wav")


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """``(edits, reference words)``: the word-level Levenshtein distance."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        previous, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (r != h))
    return row[-1], len(ref)


def wer(pairs: list[tuple[str, str]]) -> float:
    """Corpus WER of ``(reference, hypothesis)`` pairs: all edits over all reference words."""
    edits = total = 0
    for reference, hypothesis in pairs:
        e, n = word_errors(reference, hypothesis)
        edits, total = edits + e, total + n
    return edits / max(total, 1)


def cache_dir() -> Path:
    """Where the set's WAVs live."""
    return TEST_CACHE / "wer"
