"""Splitting text into the pieces Kokoro synthesizes one at a time.

Streaming sends each piece's audio as soon as it exists, so pieces follow
the text's own seams: sentences, then clauses (for a long sentence, or a long
first sentence, whose audio the listener waits for), then words, and only
for unbroken runs (CJK without spaces) a hard cut. Each piece carries the
pause that its seam asks for, since Kokoro's audio is trimmed at both ends.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Kokoro's context is 510 phonemes; English runs about one phoneme per
# character, so 300 characters leaves room for numbers and long words.
MAX_PIECE_CHARS = 300
# The first audio waits for the first piece: a long first sentence is cut at
# a clause so that playback starts after a few words, not a whole sentence.
FIRST_PIECE_CHARS = 100
# Kokoro gives a lone "Hi." odd prosody, so tiny sentences join the next one.
MIN_PIECE_CHARS = 12
SENTENCE_PAUSE = 0.25
CLAUSE_PAUSE = 0.1

_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]»]*\s+|[。！？]+[」』）]*\s*|\n\s*\n")
_CLAUSE_END = re.compile(r"(?<=[,;:—–])\s+|(?<=[、，；：])")
# A period after these ends a word, not a sentence.
_ABBREVIATIONS = frozenset(
    {
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "sr",
        "jr",
        "st",
        "vs",
        "etc",
        "e.g",
        "i.e",
        "no",
        "fig",
        "mt",
        "inc",
        "ltd",
        "co",
        "approx",
        "dept",
        "est",
        "a.m",
        "p.m",
        "jan",
        "feb",
        "aug",
        "sept",
        "oct",
        "nov",
        "dec",
    }
)


@dataclass(frozen=True, slots=True)
class TextPiece:
    """One stretch of text to synthesize, and the silence that follows it."""

    text: str
    pause_after: float = 0.0


def _is_abbreviation(text: str, period: int) -> bool:
    """Whether the period at ``period`` closes an abbreviation or an initial."""
    word = re.search(r"([^\s\"'(\[]+)$", text[:period])
    if word is None:
        return False
    token = word.group(1).lower()
    return token in _ABBREVIATIONS or (len(token) == 1 and token.isalpha())


def sentences(text: str) -> list[str]:
    """The text's sentences (and paragraphs), whitespace collapsed."""
    out: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        if text[match.start()] == "." and match.group().strip() == "." and _is_abbreviation(text, match.start()):
            continue
        out.append(text[start : match.end()])
        start = match.end()
    out.append(text[start:])
    return [" ".join(s.split()) for s in out if s.strip()]


def complete_sentences(text: str) -> tuple[str, str]:
    """``text`` cut after its last finished sentence: ``(finished, rest)``, for text that arrives in pieces."""
    end = 0
    for match in _SENTENCE_END.finditer(text):
        if text[match.start()] == "." and match.group().strip() == "." and _is_abbreviation(text, match.start()):
            continue
        end = match.end()
    return text[:end], text[end:]


def _words(text: str, limit: int) -> list[str]:
    """``text`` packed into runs of whole words of at most ``limit`` characters."""
    runs: list[str] = []
    for word in text.split():
        while len(word) > limit:  # no space to cut at
            runs.append(word[:limit])
            word = word[limit:]
        if runs and len(runs[-1]) + 1 + len(word) <= limit:
            runs[-1] = f"{runs[-1]} {word}"
        elif word:
            runs.append(word)
    return runs


def _fit(sentence: str, first_limit: int, limit: int) -> list[TextPiece]:
    """One sentence as pieces: whole when it fits, else cut at clauses, then words."""
    if len(sentence) <= first_limit:
        return [TextPiece(sentence, SENTENCE_PAUSE)]
    pieces: list[TextPiece] = []
    current = ""
    bound = first_limit
    for clause in (c.strip() for c in _CLAUSE_END.split(sentence)):
        if not clause:
            continue
        candidate = f"{current} {clause}".strip() if current else clause
        if len(candidate) <= bound:
            current = candidate
            continue
        if current:
            pieces.append(TextPiece(current, CLAUSE_PAUSE))
            bound = limit
        if len(clause) <= limit:
            current = clause
            continue
        *whole, current = _words(clause, limit)
        pieces.extend(TextPiece(run) for run in whole)
    if current:
        pieces.append(TextPiece(current, SENTENCE_PAUSE))
    return pieces


def split_text(text: str, *, max_chars: int = MAX_PIECE_CHARS, first_chars: int = FIRST_PIECE_CHARS) -> list[TextPiece]:
    """``text`` as pieces of at most ``max_chars``, in order; the last one has no pause after it."""
    pieces: list[TextPiece] = []
    for sentence in sentences(text):
        pieces.extend(_fit(sentence, first_chars if not pieces else max_chars, max_chars))
    merged: list[TextPiece] = []
    for piece in pieces:
        if (
            merged
            and len(merged[-1].text) < MIN_PIECE_CHARS
            and len(merged[-1].text) + 1 + len(piece.text) <= max_chars
        ):
            merged[-1] = TextPiece(f"{merged[-1].text} {piece.text}", piece.pause_after)
        else:
            merged.append(piece)
    if merged:
        merged[-1] = TextPiece(merged[-1].text, 0.0)
    return merged


class SentenceBuffer:
    """Text arriving in deltas (a model's tokens), handed out as pieces as soon as each is complete.

    A sentence is complete once the text after it has started; the first piece may be cut at a
    clause (``FIRST_PIECE_CHARS``) so that the first audio starts after a few words. ``flush``
    hands out what is left when the stream ends.
    """

    def __init__(self, *, max_chars: int = MAX_PIECE_CHARS, first_chars: int = FIRST_PIECE_CHARS) -> None:
        self.max_chars = max_chars
        self.first_chars = first_chars
        self.pending = ""
        self.emitted = 0

    def push(self, delta: str) -> list[TextPiece]:
        """Add a delta; the pieces it completed."""
        self.pending += delta
        complete, rest = complete_sentences(self.pending)
        if len(" ".join(complete.split())) >= MIN_PIECE_CHARS:
            self.pending = rest
            return self._emit(complete, SENTENCE_PAUSE)
        if len(self.pending) > self._first():  # a long sentence: its first clauses need not wait
            pieces = split_text(self.pending, max_chars=self.max_chars, first_chars=self._first())
            if len(pieces) > 1:
                done = pieces[:-1]
                # keep the space a delta ended with: the next delta starts a new word
                self.pending = pieces[-1].text + (" " if self.pending[-1:].isspace() else "")
                self.emitted += len(done)
                return done
        return []

    def flush(self) -> list[TextPiece]:
        """What is left, once the stream has ended."""
        text, self.pending = self.pending, ""
        return self._emit(text, 0.0)

    def _emit(self, text: str, pause: float) -> list[TextPiece]:
        pieces = split_text(text, max_chars=self.max_chars, first_chars=self._first())
        if pieces:
            pieces[-1] = TextPiece(pieces[-1].text, pause)
        self.emitted += len(pieces)
        return pieces

    def _first(self) -> int:
        return self.first_chars if self.emitted == 0 else self.max_chars
