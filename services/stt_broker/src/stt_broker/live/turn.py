"""End of turn: Smart Turn v3.2, a classifier that hears whether the speaker has finished.

The silence rule ends an utterance after a fixed stretch of silence, so it either
waits long after every question or cuts "I'd like to order... a pizza" in two.
Smart Turn (pipecat-ai, BSD-2-Clause) listens to the last 8 s of the utterance
(Whisper's 80 log-mel bands, 100 frames a second, the waveform normalized first,
zeros in front of a shorter clip) and gives the probability that the turn is
complete. The live session asks it at each short pause (``STT_LIVE_TURN_PAUSE_MS``):
"complete" ends the utterance there, "not yet" lets the pause run on up to
``STT_LIVE_TURN_MAX_SILENCE_MS``.

The model ships inside the ``pipecat-ai`` 1.14.0 wheel, which ``scripts/bootstrap.sh``
(and the image build) fetch from the package index into the cache's ``packages/``;
``prepare_turn_model`` takes the ONNX file out of it once, both sha256-pinned.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from stt_broker.settings import SttSettings
from voicestack_common.audio import STT_SAMPLE_RATE, Samples
from voicestack_common.files import PinnedFileError, default_cache_dir, packaged_file, prepare_once, take_from_wheel

logger = logging.getLogger(__name__)

TURN_WHEEL = "pipecat_ai-1.14.0-py3-none-any.whl"
TURN_WHEEL_SHA256 = "0352f504b44e78bdf524e45af4bc759601c835b9b7dc195efe5e03384b974a44"
TURN_MODEL_MEMBER = "pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx"
TURN_MODEL_FILE = "smart-turn-v3.2-cpu.onnx"
TURN_MODEL_SHA256 = "2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f"
TURN_FETCH_COMMAND = (
    "bash scripts/bootstrap.sh (or: python3 -m pip download --no-deps pipecat-ai==1.14.0 "
    "-d ~/.cache/voicestack/packages)"
)

WINDOW_SECONDS = 8
_WINDOW = WINDOW_SECONDS * STT_SAMPLE_RATE
_FRAMES = WINDOW_SECONDS * 100


class TurnModelError(RuntimeError):
    """The turn model cannot be found or does not match its pinned sha256."""


def wheel_places(cache_dir: Path) -> list[Path]:
    """Where the wheel is looked for: the cache's ``packages/``, then the default cache's (bootstrap's)."""
    return list(dict.fromkeys(base / "packages" / TURN_WHEEL for base in (cache_dir, default_cache_dir())))


def prepare_turn_model(cache_dir: Path) -> Path:
    """The Smart Turn ONNX file in the cache, taken out of the pinned wheel once; ``TurnModelError`` without it."""

    def extract(target: Path) -> None:
        wheel = packaged_file(TURN_WHEEL, cache_dir)
        if wheel is None:
            raise TurnModelError(f"the pipecat-ai 1.14.0 wheel (Smart Turn) is not here: {TURN_FETCH_COMMAND}")
        logger.info("taking the Smart Turn model out of %s (once)", wheel.name, extra={"target": str(target)})
        try:
            take_from_wheel(wheel, TURN_WHEEL_SHA256, TURN_MODEL_MEMBER, TURN_MODEL_SHA256, target)
        except PinnedFileError as exc:
            raise TurnModelError(str(exc)) from None

    return prepare_once(cache_dir / "turn" / TURN_MODEL_FILE, extract)


class TurnModel:
    """Smart Turn on ONNX Runtime, one thread: ``complete(samples)`` is the probability the turn is over."""

    def __init__(self, path: Path, *, threshold: float = 0.5) -> None:
        import onnxruntime as rt
        from faster_whisper.feature_extractor import FeatureExtractor

        options = rt.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.path = path
        self.threshold = threshold
        self._session: Any = rt.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        self._features = FeatureExtractor(
            feature_size=80, sampling_rate=STT_SAMPLE_RATE, hop_length=160, chunk_length=WINDOW_SECONDS, n_fft=400
        )

    def features(self, samples: Samples) -> np.ndarray:
        """The model's input for the end of ``samples``: (1, 80, 800) log-mel of the last 8 s."""
        window = np.zeros(_WINDOW, np.float32)
        tail = samples[-_WINDOW:]
        window[_WINDOW - len(tail) :] = tail
        normalized = (window - window.mean()) / np.sqrt(window.var() + 1e-7)
        return np.asarray(self._features(normalized, padding=0)[:, :_FRAMES], np.float32)[None]

    def probability(self, samples: Samples) -> float:
        """The probability that the speaker has finished at the end of ``samples`` (16 kHz mono)."""
        (logits,) = self._session.run(None, {"input_features": self.features(samples)})
        return float(np.asarray(logits).reshape(-1)[0])

    def complete(self, samples: Samples) -> bool:
        """Whether the turn is over (the probability above the threshold)."""
        return self.probability(samples) > self.threshold


def load_turn_model(settings: SttSettings) -> TurnModel | None:
    """``STT_TURN_MODEL_PATH`` (it must load), else the prepared Smart Turn; ``None`` (logged) when that is
    not on this machine."""
    threshold = settings.live_turn_threshold
    if settings.turn_model_path is not None:
        return TurnModel(settings.turn_model_path, threshold=threshold)
    try:
        return TurnModel(prepare_turn_model(settings.cache_dir), threshold=threshold)
    except TurnModelError as exc:
        logger.warning("no end-of-turn model: live sessions end utterances on silence alone (%s)", exc)
        return None
