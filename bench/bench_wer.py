"""Word error rate and real-time factor of every STT engine configuration, with and without VAD.

    uv run python bench/bench_wer.py [--size 36] [--threads 2] [--json out.json] [--vad-sweep]

The set (tests/wer.py) is generated here: 36 utterances from four espeak-ng and four
Kokoro voices, at 8, 16 and 44.1 kHz, clean and with white noise at 20 and 10 dB SNR,
with silence around and between sentences. Each clip goes through what the broker does
(decode the WAV to 16 kHz, Silero VAD when on, the engine) in this process; the engine
configurations are whisper.cpp f16 / q8_0 / q5_1 x greedy / beam 5, f16 greedy with the
encoder context fitted to each clip (STT_FIT_AUDIO_CTX) and faster-whisper int8 x greedy /
beam 5, all with temperature fallback (0.2 steps). The real-time factor
is processing seconds (VAD included) over audio seconds. Clips of silence and of noise
alone are counted separately: any word on them is a hallucination.

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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from benchkit import emit, machine
from tests.speech import TEST_CACHE
from tests.wer import clip_wav, noise_only_wav, wer, wer_set

from stt_broker.engines.base import SttEngine, TranscribeOptions
from stt_broker.engines.faster_whisper import FasterWhisperEngine
from stt_broker.engines.whispercpp import WhisperCppEngine, WhisperCppParams
from stt_broker.models import bundled_ct2_dir, prepare_bundled_ggml
from stt_broker.vad import SpeechDetector
from voicestack_common.audio import Pcm, decode_audio

# Speech padding x the shortest silence that is cut, around the defaults (400 ms, 2000 ms).
SWEEP = [(pad, gap) for gap in (500, 2000) for pad in (100, 200, 400, 600)]


def engines(threads: int) -> dict[str, Callable[[], SttEngine]]:
    """Every configuration by name, most telling first; built lazily, one at a time."""
    cache = TEST_CACHE / "models"

    def cpp(quant: str, beam: int, fit: bool = False) -> Callable[[], SttEngine]:
        return lambda: WhisperCppEngine(
            prepare_bundled_ggml(cache, quantization=quant),
            threads=threads,
            params=WhisperCppParams(beam_size=beam, fit_audio_ctx=fit),
        )

    def fw(beam: int) -> Callable[[], SttEngine]:
        return lambda: FasterWhisperEngine(bundled_ct2_dir(), threads=threads, model_id="tiny.en", beam_size=beam)

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
    }


def run(engine: SttEngine, clips: list[tuple[str, Pcm]], detector: SpeechDetector | None) -> dict[str, Any]:
    """Transcribe every clip as the broker would; WER, RTF and the transcripts."""
    options = TranscribeOptions(language="en")
    hypotheses: list[str] = []
    spent = 0.0
    for _, audio in clips:
        started = time.perf_counter()
        speech: Pcm | None = audio
        if detector is not None:
            found = detector.speech(audio)
            speech = found[0] if found else None
        text = engine.transcribe(speech, options).text if speech is not None else ""
        spent += time.perf_counter() - started
        hypotheses.append(text)
    audio_seconds = sum(a.duration for _, a in clips)
    return {"rtf": round(spent / audio_seconds, 4), "hypotheses": hypotheses}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=36)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--only", action="append", help="run only configurations named so (repeatable)")
    parser.add_argument("--vad-sweep", action="store_true")
    parser.add_argument("--vad-only", action="store_true", help="skip the runs without VAD")
    parser.add_argument("--pick", help="comma-separated clip indices instead of the first --size")
    args = parser.parse_args()

    items = wer_set(args.size)
    if args.pick:
        items = [items[int(i)] for i in args.pick.split(",")]
    clips = [(item.text, decode_audio(clip_wav(item))) for item in items]
    empties = [("", decode_audio(noise_only_wav())), ("", Pcm(np.zeros(48_000, np.float32), 16_000))]
    results: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "utterances": len(items),
        "audio_seconds": round(sum(a.duration for _, a in clips), 1),
        "threads": args.threads,
        "configs": {},
    }
    conditions = sorted({item.condition for item in items})

    def score(name: str, engine: SttEngine, detector: SpeechDetector | None) -> None:
        measured = run(engine, clips, detector)
        pairs = list(zip([t for t, _ in clips], measured["hypotheses"], strict=True))
        by_condition = {
            c: round(wer([p for p, item in zip(pairs, items, strict=True) if item.condition == c]), 4)
            for c in conditions
        }
        spurious = run(engine, empties, detector)["hypotheses"]
        results["configs"][name] = {
            "wer": round(wer(pairs), 4),
            "wer_clean": round(wer([p for p, i in zip(pairs, items, strict=True) if i.snr_db is None]), 4),
            "rtf": measured["rtf"],
            "by_condition": by_condition,
            "words_on_silence_and_noise": sum(len(h.split()) for h in spurious),
            "clip_wer": [round(wer([p]), 3) for p in pairs],
        }
        print(f"{name}: WER {results['configs'][name]['wer']:.3f}, RTF {measured['rtf']:.3f}", flush=True)
        if args.json:  # after every configuration, so a long run can be read while it goes on
            emit_quietly(results, args.json)

    if args.vad_sweep:
        engine = engines(args.threads)["whisper.cpp f16 greedy"]()
        engine.load()
        score("no VAD", engine, None)
        for pad, gap in SWEEP:
            score(f"VAD pad {pad} ms, gap {gap} ms", engine, SpeechDetector(0.5, pad, gap))
        engine.close()
    else:
        detector = SpeechDetector()
        for name, make in engines(args.threads).items():
            if args.only and name not in args.only:
                continue
            engine = make()
            engine.load()
            engine.transcribe(clips[0][1], TranscribeOptions(language="en"))  # warm-up
            score(f"{name}, VAD", engine, detector)
            if not args.vad_only:
                score(f"{name}, no VAD", engine, None)
            engine.close()
    results["median_rtf"] = statistics.median(c["rtf"] for c in results["configs"].values())
    emit(results, args.json)
    print(table(results))


def emit_quietly(results: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(results, indent=2))


def table(results: dict[str, Any]) -> str:
    """The markdown table docs/benchmarks.md shows."""
    conditions = sorted(next(iter(results["configs"].values()))["by_condition"])
    head = "| configuration | WER | WER clean | " + " | ".join(conditions) + " | words on silence/noise | RTF |"
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for name, r in results["configs"].items():
        cells = " | ".join(f"{r['by_condition'][c]:.3f}" for c in conditions)
        lines.append(
            f"| {name} | {r['wer']:.3f} | {r['wer_clean']:.3f} | {cells} | "
            f"{r['words_on_silence_and_noise']} | {r['rtf']:.3f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
