"""Streaming Silero VAD: one probability per 32 ms window, the model's state carried between calls.

faster-whisper's Silero v6 export treats its batch axis as time (the LSTM
state runs across it) and wants each 512-sample window prefixed with the
previous window's last 64 samples. We keep that state per session, so new
audio is scored once, never the whole buffer again.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from voicestack_common.audio import Samples

WINDOW = 512
"""Samples per VAD window at 16 kHz (32 ms)."""
_CONTEXT = 64


def load_silero() -> Any:
    """The shared ONNX session (thread-safe; the state lives in each ``StreamingVad``)."""
    from faster_whisper.vad import get_vad_model

    return get_vad_model().session


class StreamingVad:
    """Speech probabilities for a stream of 16 kHz samples, fed in any slice sizes."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(_CONTEXT, dtype=np.float32)
        self._rest = np.zeros(0, dtype=np.float32)

    def feed(self, samples: Samples) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """(probability, RMS level) of each complete window ``samples`` finishes (leftovers wait)."""
        audio = np.concatenate([self._rest, samples]) if len(self._rest) else samples
        count = len(audio) // WINDOW
        self._rest = audio[count * WINDOW :].copy()
        if count == 0:
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.float32)
        windows = audio[: count * WINDOW].reshape(count, WINDOW)
        contexts = np.empty((count, _CONTEXT), dtype=np.float32)
        contexts[0] = self._context
        contexts[1:] = windows[:-1, -_CONTEXT:]
        self._context = windows[-1, -_CONTEXT:].copy()
        batch = np.concatenate([contexts, windows], axis=1)
        probs, self._h, self._c = self._session.run(None, {"input": batch, "h": self._h, "c": self._c})
        levels = np.sqrt(np.mean(np.square(windows), axis=1, dtype=np.float32))
        return np.asarray(probs, dtype=np.float32).reshape(-1), levels.astype(np.float32)
