"""End of turn: the Smart Turn model against the silence rule, on the live core, in real time.

    uv run python bench/bench_turn.py [--questions 20] [--silence-ms 700] [--pace 1.0] [--json out.json]

Two sets of clips, each fed to a live session (the STT broker's core, in this process, on a real
whisper.cpp pool of 2 contexts with the broker's default threads, and the real turn model) as 20 ms
PCM16 frames at real-time pace, followed by 2.5 s of silence, once per mode (``model``, ``silence``
with ``--silence-ms``, the gateway's 700 ms), the modes alternating clip by clip:

* **paused questions**: spoken questions with a hesitation of 0.6-1.0 s in the middle ("I'd like to
  order a… large pizza with mushrooms.": Kokoro speaks the whole question with "..." there, and the
  gap it leaves is stretched), in Kokoro's af_heart, am_adam, bf_emma and jf_alpha.
  A clip heard as more than one utterance was *cut in two*. From the last voiced sample of the
  question (the wall-clock moment it was fed) to ``speech_stopped`` and to ``final``: the wait a
  user feels before the reply can start.
* **the WER set's two-sentence clips** (devkit/wer.py, 0.6-1.4 s between the sentences, espeak-ng
  and Kokoro, 8-44.1 kHz, clean and noisy): how many are split, and the word error rate of the
  joined finals in each mode (the turn model must not cost accuracy).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
from benchkit import emit, machine, summary
from prometheus_client import CollectorRegistry

from devkit.speech import TEST_CACHE, kokoro_speech
from devkit.wer import clip_wav, kokoro_voice_speech, wer, wer_set
from stt_broker.engines import engine_factory
from stt_broker.live.runtime import LiveConfig, LiveMetrics, LiveRuntime
from stt_broker.live.session import LiveSession
from stt_broker.live.turn import TurnModel, prepare_turn_model
from stt_broker.live.vad import load_silero
from stt_broker.models import resolve_model
from stt_broker.settings import SttSettings
from voicestack_common.audio import STT_SAMPLE_RATE, decode_audio, resample
from voicestack_common.live import StartMessage
from voicestack_common.workers import WorkerPool

FRAME = 320  # 20 ms at 16 kHz
TAIL_S = 2.5
VOICES = ("af_heart", "am_adam", "bf_emma", "jf_alpha")
# (before the pause, after it): questions a person might break off and carry on.
PAUSED = (
    ("I'd like to order a", "large pizza with mushrooms."),
    ("Can you turn on the", "lights in the kitchen?"),
    ("What is the weather going to be", "like tomorrow in Paris?"),
    ("Set a timer for", "twenty minutes please."),
    ("Remind me to call", "my mother this evening."),
    ("How far is it from", "Berlin to Munich by train?"),
    ("Play some music by", "the Beatles in the living room."),
    ("So I was thinking that", "we could go to the beach on Sunday."),
    ("Tell me a story about", "a dragon who loves to read."),
    ("What is the capital of", "Australia?"),
    ("Could you add milk and", "eggs to my shopping list?"),
    ("When does the next bus to", "the airport leave?"),
    ("I need to book a table for", "four people at eight o'clock."),
    ("What's the difference between", "a crocodile and an alligator?"),
    ("Turn the heating up to", "twenty one degrees."),
    ("How many minutes should I", "boil an egg?"),
    ("Wake me up at", "half past six tomorrow."),
    ("Send a message to Anna saying", "I will be late."),
    ("Who wrote the book", "Pride and Prejudice?"),
    ("Is it going to rain in", "London this afternoon?"),
)


def speak(text: str, voice: str) -> np.ndarray:
    pcm = kokoro_speech(text, voice=voice) if voice.startswith("j") else kokoro_voice_speech(text, voice)
    samples = resample(pcm, STT_SAMPLE_RATE).samples
    loud = np.flatnonzero(np.abs(samples) > 0.01)
    return samples[loud[0] : loud[-1] + 1]


def paused_clip(index: int) -> tuple[np.ndarray, int, str]:
    """(16 kHz samples with the tail, index of the last voiced sample, the text) of the index-th question.

    The question is spoken whole, with "..." where the speaker hesitates, so that the voice carries on
    as a speaker does (a fragment spoken alone ends as a finished sentence: the model rightly hears it
    as one); the quiet gap the ellipsis leaves is then stretched to the pause.
    """
    before, after = PAUSED[index % len(PAUSED)]
    voice = VOICES[index % len(VOICES)]
    pause = 0.6 + 0.4 * ((index * 7) % 10) / 9
    speech = speak(f"{before}... {after}", voice)
    gap_start, gap_end = _middle_gap(speech)
    stretch = max(0, int(pause * STT_SAMPLE_RATE) - (gap_end - gap_start))
    middle = (gap_start + gap_end) // 2
    parts = [np.zeros(int(0.4 * STT_SAMPLE_RATE), np.float32), speech[:middle]]
    parts += [np.zeros(stretch, np.float32), speech[middle:]]
    speech_end = sum(len(p) for p in parts)
    parts.append(np.zeros(int(TAIL_S * STT_SAMPLE_RATE), np.float32))
    return np.concatenate(parts), speech_end, f"{before} {after}"


def _middle_gap(samples: np.ndarray, step: int = 160) -> tuple[int, int]:
    """The longest quiet stretch in the middle three fifths of ``samples`` (10 ms frames), as sample indices."""
    rms = np.sqrt(np.mean(samples[: len(samples) // step * step].reshape(-1, step) ** 2, axis=1))
    quiet = rms < 0.02 * float(rms.max())
    best, run_start = (0, 0), None
    for frame in range(len(quiet) * 1 // 5, len(quiet) * 4 // 5 + 1):
        if frame < len(quiet) and quiet[frame]:
            run_start = frame if run_start is None else run_start
            continue
        if run_start is not None and frame - run_start > best[1] - best[0]:
            best = (run_start, frame)
        run_start = None
    return best[0] * step, best[1] * step


def wer_clip(wav: bytes) -> tuple[np.ndarray, int]:
    samples = decode_audio(wav, sample_rate=STT_SAMPLE_RATE).samples
    loud = np.flatnonzero(np.abs(samples) > 0.02 * float(np.abs(samples).max()))
    return np.concatenate([samples, np.zeros(int(TAIL_S * STT_SAMPLE_RATE), np.float32)]), int(loud[-1]) + 1


async def run_clip(
    runtime: LiveRuntime, pool: WorkerPool[Any], samples: np.ndarray, speech_end: int, mode: str, pace: float
) -> dict[str, Any]:
    """Feed one clip in real time; the finals and the waits from the end of speech."""
    start = StartMessage(partials=True, end_of_turn=mode, language="en")  # type: ignore[arg-type]
    session = LiveSession(runtime, start, pool=pool, model="tiny.en")
    marks: dict[str, float] = {}
    finals: list[str] = []
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
    began = time.perf_counter()
    ended_at = began + speech_end / STT_SAMPLE_RATE / pace

    async def listen() -> None:
        while True:
            event = await session.next_event()
            now = time.perf_counter()
            if event.type in ("speech_stopped", "final") and now >= ended_at:
                marks.setdefault(event.type, now - ended_at)
            if event.type == "final":
                finals.append(event.text)  # type: ignore[union-attr]
            if event.type == "closed":
                return

    listener = asyncio.ensure_future(listen())
    for number, start in enumerate(range(0, len(pcm), FRAME * 2)):
        session.feed(pcm[start : start + FRAME * 2])
        await asyncio.sleep(max(0.0, began + (number + 1) * FRAME / STT_SAMPLE_RATE / pace - time.perf_counter()))
    await session.stop()
    await asyncio.wait_for(listener, 120)
    return {"finals": finals, **marks}


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    settings = SttSettings(cache_dir=TEST_CACHE / "models")
    pool: WorkerPool[Any] = WorkerPool(
        "stt", engine_factory(settings, resolve_model(settings)), size=settings.layout()[0], max_queue=8
    )
    await asyncio.to_thread(pool.start)
    config = LiveConfig.from_settings(settings)
    runtime = LiveRuntime(
        None,  # type: ignore[arg-type]  # sessions get the pool directly
        lambda model, language: "tiny.en",
        load_silero(),
        LiveMetrics(CollectorRegistry()),
        dataclasses.replace(config, silence_ms=args.silence_ms),
        default_language="en",
        turn_model=TurnModel(prepare_turn_model(settings.cache_dir)),
    )
    modes = ("model", "silence")
    paused: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
    split: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
    try:
        for index in range(args.questions):
            samples, speech_end, text = paused_clip(index)
            for mode in modes if index % 2 else modes[::-1]:
                result = await run_clip(runtime, pool, samples, speech_end, mode, args.pace)
                paused[mode].append(result | {"text": text})
        for item in [u for u in wer_set() if "." in u.text.rstrip(".")]:
            samples, speech_end = wer_clip(clip_wav(item))
            for mode in modes if item.index % 2 else modes[::-1]:
                result = await run_clip(runtime, pool, samples, speech_end, mode, args.pace)
                split[mode].append(result | {"text": item.text})
    finally:
        runtime.close()
        await asyncio.to_thread(pool.close)

    def report(results: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "clips": len(results),
            "cut_in_two": sum(len(r["finals"]) > 1 for r in results),
            "speech_end_to_speech_stopped": summary([r["speech_stopped"] for r in results if "speech_stopped" in r]),
            "speech_end_to_final": summary([r["final"] for r in results if "final" in r]),
            "wer": round(wer([(r["text"], " ".join(r["finals"])) for r in results]), 3),
        }

    return {
        "machine": machine(),
        "silence_ms": args.silence_ms,
        "turn_pause_ms": config.turn_pause_ms,
        "turn_max_silence_ms": config.turn_max_silence_ms,
        "paused_questions": {mode: report(paused[mode]) for mode in modes},
        "wer_two_sentence_clips": {mode: report(split[mode]) for mode in modes},
        "cut": {mode: [r["finals"] for r in paused[mode] if len(r["finals"]) > 1] for mode in modes},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=int, default=len(PAUSED), help="paused questions per mode")
    parser.add_argument("--silence-ms", type=int, default=700, help="the silence rule's wait (the gateway's default)")
    parser.add_argument("--pace", type=float, default=1.0, help="1 = real time")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    emit(asyncio.run(bench(args)), args.json)


if __name__ == "__main__":
    main()
