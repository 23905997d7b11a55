"""The session's recent audio: appended in slices, read back by sample range, dropped from the front."""

from __future__ import annotations

from collections import deque

import numpy as np

from voicestack_common.audio import Samples


class AudioBuffer:
    """16 kHz samples ``[start, end)`` of a stream, kept as the slices they came in."""

    def __init__(self) -> None:
        self._chunks: deque[Samples] = deque()
        self.start = 0
        self.end = 0

    def append(self, samples: Samples) -> None:
        """Add samples at the end of the stream."""
        if len(samples):
            self._chunks.append(samples)
            self.end += len(samples)

    def drop_before(self, sample: int) -> None:
        """Forget everything before ``sample`` (whole slices, then the front of one)."""
        sample = min(sample, self.end)
        while self._chunks and self.start + len(self._chunks[0]) <= sample:
            self.start += len(self._chunks.popleft())
        if self._chunks and sample > self.start:
            self._chunks[0] = self._chunks[0][sample - self.start :]
            self.start = sample
        if not self._chunks:
            self.start = self.end

    def read(self, begin: int, end: int) -> Samples:
        """A copy of samples ``[begin, end)`` (clipped to what is kept)."""
        begin, end = max(begin, self.start), min(end, self.end)
        if end <= begin:
            return np.zeros(0, np.float32)
        parts: list[Samples] = []
        position = self.start
        for chunk in self._chunks:
            chunk_end = position + len(chunk)
            if chunk_end > begin and position < end:
                parts.append(chunk[max(0, begin - position) : end - position])
            if chunk_end >= end:
                break
            position = chunk_end
        return np.concatenate(parts).astype(np.float32, copy=False)
