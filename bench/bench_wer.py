"""Word error rate and real-time factor of every STT engine configuration, with and without VAD.

    uv run python bench/bench_wer.py [--models tiny.en base] [--size 36] [--threads 2] [--json out.json]
                                     [--vad-only] [--only NAME ...] [--no-extra] [--vad-sweep]

The set (devkit/wer.py) is generated here, in three parts: 36 English utterances from four
espeak-ng and four Kokoro (Japanese) voices, at 8, 16 and 44.1 kHz, clean and with white noise
at 20 and 10 dB SNR, with silence around and between sentences (``--size`` takes the first N);
English from Kokoro's af_heart, am_adam and bf_emma, clean at 16 and 8 kHz; and espeak-ng German,
Spanish, French, Italian and Portuguese, clean at 16 and 8 kHz (``--no-extra`` leaves the last two
parts out). Each clip goes through what the broker does (decode the WAV to 16 kHz, Silero VAD
when on, the engine) in this process, told the clip's language.

Models (``--models``, to keep a run short):
  * ``tiny.en`` (the bundled default; English only, so it is scored on the English clips only):
    whisper.cpp f16 / q8_0 / q5_1 x greedy / beam 5, f16 greedy with the encoder context fitted
    to each clip (STT_FIT_AUDIO_CTX) and faster-whisper int8 x greedy / beam 5, each with and
    without VAD; ``tiny.en-default`` is whisper.cpp f16 greedy alone (the broker's default);
  * ``base`` (Whisper base, multilingual): whisper.cpp f16 / q8_0 / q5_1 greedy, with VAD as
    the broker runs, scored on every clip; and once more on the non-English clips with no
    language given, which gives the accuracy of its language detection.
All use temperature fallback (0.2 steps). WER is reported overall, per language and per
condition (rate x noise, on the English clips). The real-time factor is processing seconds
(VAD included) over audio seconds, over all of a configuration's clips and over the English
ones alone (the same audio for every model). Clips of silence and of noise alone are counted
separately: any word on them is a hallucination.

``--vad-sweep`` instead compares VAD speech padding x minimum cut silence on whisper.cpp
f16 greedy (how the defaults in stt_broker/vad_defaults.py were chosen); WER does not
depend on the machine's load, so the sweep may run on a busy machine (its RTF may not).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from benchkit import emit, machine

from devkit.speech import TEST_CACHE
from devkit.wer import Utterance, clip_wav, full_set, noise_only_wav, wer, wer_set
from stt_broker.engines.base import SttEngine, TranscribeOptions
from stt_broker.engines.faster_whisper import FasterWhisperEngine
from stt_broker.engines.whispercpp import WhisperCppEngine, WhisperCppParams
from stt_broker.models import bundled_ct2_dir, prepare_bundled_ggml, prepare_multilingual_ggml
from stt_broker.vad import SpeechDetector
from voicestack_common.audio import Pcm, decode_audio

# Speech padding x the shortest silence that is cut, around the defaults (400 ms, 2000 ms).
SWEEP = [(pad, gap) for gap in (500, 2000) for pad in (100, 200, 400, 600)]


MODELS = ("tiny.en", "tiny.en-default", "base")
ENGLISH_ONLY = "tiny.en (English only)"


@dataclass(frozen=True, slots=True)
class Config:
    """One engine configuration: how to build it, which model set it belongs to, what it can hear."""

    make: Callable[[], SttEngine]
    model: str
    multilingual: bool = False
    vad_only: bool = False


def engines(threads: int) -> dict[str, Config]:
    """Every configuration by name, most telling first; built lazily, one at a time."""
    cache = TEST_CACHE / "models"

    def cpp(quant: str, beam: int, fit: bool = False) -> Config:
        return Config(
            lambda: WhisperCppEngine(
                prepare_bundled_ggml(cache, quantization=quant),
                threads=threads,
                params=WhisperCppParams(beam_size=beam, fit_audio_ctx=fit),
            ),
            "tiny.en",
        )

    def fw(beam: int) -> Config:
        return Config(
            lambda: FasterWhisperEngine(bundled_ct2_dir(), threads=threads, model_id="tiny.en", beam_size=beam),
            "tiny.en",
        )

    def base(quant: str) -> Config:
        return Config(
            lambda: WhisperCppEngine(prepare_multilingual_ggml(cache, quant), threads=threads),
            "base",
            multilingual=True,
            vad_only=True,
        )

    return {
        "whisper.cpp f16 greedy": cpp("f16", 1),
        "whisper.cpp f16 beam 5": cpp("f16", 5),
        "faster-whisper int8 beam 5": fw(5),
        "whisper.cpp q8_0 greedy": cpp("q8_0", 1),
        "whisper.cpp q5_1 greedy": cpp("q5_1", 1),
        "faster-whisper int8 greedy": fw(1),
        "whisper.cpp q8_0 beam 5": cpp("q8_0", 5),
        "whisper.cpp q5_1 beam 5": cpp("q5_1", 5),
        "whisper.cpp f16 greedy, fitted context": cpp("f16", 1, fit=True),
        "whisper.cpp base f16 greedy": base("f16"),
        "whisper.cpp base q8_0 greedy": base("q8_0"),
        "whisper.cpp base q5_1 greedy": base("q5_1"),
    }


def selected(configs: dict[str, Config], models: list[str], only: list[str] | None) -> dict[str, Config]:
    """The configurations of the chosen model sets (``tiny.en-default``: f16 greedy alone), or named by ``only``."""
    chosen = {}
    for name, config in configs.items():
        in_set = config.model in models or ("tiny.en-default" in models and name == "whisper.cpp f16 greedy")
        if in_set and (not only or name in only):
            chosen[name] = config
    return chosen


def run(
    engine: SttEngine, clips: list[Pcm], languages: list[str | None], detector: SpeechDetector | None
) -> dict[str, Any]:
    """Transcribe every clip as the broker would, told its language (``None``: detect it);
    per clip the seconds spent, the transcript and the language the engine reports."""
    hypotheses: list[str] = []
    detected: list[str] = []
    spent: list[float] = []
    for audio, language in zip(clips, languages, strict=True):
        started = time.perf_counter()
        speech: Pcm | None = audio
        if detector is not None:
            found = detector.speech(audio)
            speech = found[0] if found else None
        result = engine.transcribe(speech, TranscribeOptions(language=language)) if speech is not None else None
        spent.append(time.perf_counter() - started)
        hypotheses.append(result.text if result is not None else "")
        detected.append(result.language if result is not None else "")
    audio_seconds = sum(a.duration for a in clips)
    return {"rtf": round(sum(spent) / audio_seconds, 4), "spent": spent, "hypotheses": hypotheses, "detected": detected}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=36, help="clips of the 36-clip English set to use")
    parser.add_argument("--no-extra", action="store_true", help="leave out the Kokoro-voice and multilingual clips")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--models",
        nargs="+",
        choices=MODELS,
        default=["tiny.en", "base"],
        help="model sets to run (tiny.en-default: whisper.cpp f16 greedy alone); default: tiny.en base",
    )
    parser.add_argument("--only", action="append", help="run only configurations named so (repeatable)")
    parser.add_argument("--vad-sweep", action="store_true")
    parser.add_argument("--vad-only", action="store_true", help="skip the runs without VAD")
    parser.add_argument("--pick", help="comma-separated clip indices (Utterance.index) instead of the whole set")
    args = parser.parse_args()

    items = wer_set(args.size) if args.no_extra else full_set(args.size)
    if args.pick:
        wanted = {int(i) for i in args.pick.split(",")}
        items = [item for item in full_set() if item.index in wanted]
    audio = [decode_audio(clip_wav(item)) for item in items]
    empties = [decode_audio(noise_only_wav()), Pcm(np.zeros(48_000, np.float32), 16_000)]
    results: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "utterances": len(items),
        "audio_seconds": round(sum(a.duration for a in audio), 1),
        "english_utterances": sum(item.language == "en" for item in items),
        "languages": sorted({item.language for item in items}, key=lambda c: (c != "en", c)),
        "threads": args.threads,
        "configs": {},
    }

    def score(name: str, config: Config, engine: SttEngine, detector: SpeechDetector | None) -> None:
        chosen = [n for n, item in enumerate(items) if config.multilingual or item.language == "en"]
        its = [items[n] for n in chosen]
        clips = [audio[n] for n in chosen]
        measured = run(engine, clips, [item.language for item in its], detector)
        pairs = list(zip([item.text for item in its], measured["hypotheses"], strict=True))

        def wer_of(keep: Callable[[Utterance], bool]) -> float | None:
            kept = [p for p, item in zip(pairs, its, strict=True) if keep(item)]
            return round(wer(kept), 4) if kept else None

        def rtf_of(keep: Callable[[Utterance], bool]) -> float | None:
            kept = [(s, a.duration) for s, a, item in zip(measured["spent"], clips, its, strict=True) if keep(item)]
            return round(sum(s for s, _ in kept) / sum(d for _, d in kept), 4) if kept else None

        english = [item for item in its if item.language == "en"]
        conditions = sorted({item.condition for item in english})
        entry: dict[str, Any] = {
            "model": config.model if config.multilingual else ENGLISH_ONLY,
            "utterances": len(its),
            "wer": round(wer(pairs), 4),
            "wer_clean": wer_of(lambda i: i.snr_db is None),
            "rtf": measured["rtf"],
            "rtf_english": rtf_of(lambda i: i.language == "en"),
            "by_language": {lang: wer_of(spoken_in(lang)) for lang in results["languages"]},
            "by_condition": {c: wer_of(english_in(c)) for c in conditions},
            "english_clean": wer_of(lambda i: i.language == "en" and i.snr_db is None),
            "words_on_silence_and_noise": sum(
                len(h.split()) for h in run(engine, empties, ["en", "en"], detector)["hypotheses"]
            ),
            "clips": [
                {"index": item.index, "language": item.language, "wer": round(wer([p]), 3), "text": p[1]}
                for p, item in zip(pairs, its, strict=True)
            ],
        }
        foreign = [n for n, item in enumerate(its) if item.language != "en"]
        if config.multilingual and detector is not None and foreign:
            # The same clips once more with no language: what the engine detects, and the WER it then gets.
            auto = run(engine, [clips[n] for n in foreign], [None] * len(foreign), detector)
            truth = [its[n].language for n in foreign]
            entry["language_detection"] = {
                "clips": len(foreign),
                "accuracy": round(sum(d == t for d, t in zip(auto["detected"], truth, strict=True)) / len(foreign), 4),
                "by_language": {
                    lang: [d for d, t in zip(auto["detected"], truth, strict=True) if t == lang]
                    for lang in sorted(set(truth))
                },
                "wer": round(wer(list(zip([its[n].text for n in foreign], auto["hypotheses"], strict=True))), 4),
            }
        results["configs"][name] = entry
        detection = entry.get("language_detection")
        print(
            f"{name}: WER {entry['wer']:.3f}, English {entry['by_language'].get('en')}, RTF {entry['rtf']:.3f}"
            + (f", language detected {detection['accuracy']:.0%}" if detection else ""),
            flush=True,
        )
        if args.json:  # after every configuration, so a long run can be read while it goes on
            emit_quietly(results, args.json)

    if args.vad_sweep:
        engine = engines(args.threads)["whisper.cpp f16 greedy"].make()
        engine.load()
        sweep = Config(lambda: engine, "tiny.en")
        score("no VAD", sweep, engine, None)
        for pad, gap in SWEEP:
            score(f"VAD pad {pad} ms, gap {gap} ms", sweep, engine, SpeechDetector(0.5, pad, gap))
        engine.close()
    else:
        detector = SpeechDetector()
        for name, config in selected(engines(args.threads), args.models, args.only).items():
            engine = config.make()
            engine.load()
            engine.transcribe(audio[0], TranscribeOptions(language=items[0].language))  # warm-up
            score(f"{name}, VAD", config, engine, detector)
            if not (args.vad_only or config.vad_only):
                score(f"{name}, no VAD", config, engine, None)
            engine.close()
    if not results["configs"]:
        raise SystemExit("no configuration matched --models / --only")
    results["median_rtf"] = statistics.median(c["rtf"] for c in results["configs"].values())
    emit(results, args.json)
    print(table(results))
    print()
    print(condition_table(results))


def spoken_in(language: str) -> Callable[[Utterance], bool]:
    return lambda item: item.language == language


def english_in(condition: str) -> Callable[[Utterance], bool]:
    return lambda item: item.language == "en" and item.condition == condition


def emit_quietly(results: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(results, indent=2))


def _cell(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def table(results: dict[str, Any]) -> str:
    """The markdown table of WER per language docs/benchmarks.md shows (tiny.en: English clips only)."""
    languages = results["languages"]
    head = (
        "| configuration | model | clips | WER | "
        + " | ".join(languages)
        + " | language detected (no language given) | words on silence/noise | RTF | RTF English |"
    )
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for name, r in results["configs"].items():
        cells = " | ".join(_cell(r["by_language"].get(lang)) for lang in languages)
        detection = r.get("language_detection")
        detected = f"{detection['accuracy']:.0%} of {detection['clips']}" if detection else "—"
        lines.append(
            f"| {name} | {r['model']} | {r['utterances']} | {r['wer']:.3f} | {cells} | {detected} | "
            f"{r['words_on_silence_and_noise']} | {r['rtf']:.3f} | {_cell(r['rtf_english'])} |"
        )
    return "\n".join(lines)


def condition_table(results: dict[str, Any]) -> str:
    """WER per rate and noise condition on the English clips (the shape of the earlier tables)."""
    conditions = sorted({c for r in results["configs"].values() for c in r["by_condition"]})
    head = "| configuration | WER English | English clean | " + " | ".join(conditions) + " | RTF English |"
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for name, r in results["configs"].items():
        cells = " | ".join(_cell(r["by_condition"].get(c)) for c in conditions)
        lines.append(
            f"| {name} | {_cell(r['by_language'].get('en'))} | {_cell(r['english_clean'])} | {cells} | "
            f"{_cell(r['rtf_english'])} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
