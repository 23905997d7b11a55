"""LocalAgreement-2: a word is stable once two consecutive hypotheses agree on it and all before it.

Partials re-decode the whole open utterance, so later words can change while
earlier ones settle. The stable prefix only grows within an utterance, so a
client can print it for good and redraw only the unstable tail.
"""

from __future__ import annotations

import re

_NORMAL = re.compile(r"[^\w']+")


def _key(word: str) -> str:
    return _NORMAL.sub("", word.lower())


class LocalAgreement:
    """Splits each new hypothesis of one utterance into a stable prefix and an unstable tail."""

    def __init__(self) -> None:
        self._previous: list[str] = []
        self._stable: list[str] = []

    def update(self, text: str) -> tuple[str, str]:
        """(stable, unstable) for the newest hypothesis ``text``."""
        words = text.split()
        agreed = 0
        for old, new in zip(self._previous, words, strict=False):
            if _key(old) != _key(new):
                break
            agreed += 1
        if agreed > len(self._stable) and self._agrees_with_stable(words):
            self._stable += words[len(self._stable) : agreed]
        self._previous = words
        # Should the model change a stable word, the stable prefix stands; the tail is what follows it.
        return " ".join(self._stable), " ".join(words[len(self._stable) :])

    def _agrees_with_stable(self, words: list[str]) -> bool:
        return len(words) >= len(self._stable) and all(
            _key(a) == _key(b) for a, b in zip(self._stable, words, strict=False)
        )
