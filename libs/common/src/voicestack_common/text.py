"""Splitting text into the pieces Kokoro synthesizes one at a time.

Streaming sends each piece's audio as soon as it exists, so pieces follow
the text's own seams: sentences, then clauses (for a long sentence, or a long
first sentence, whose audio the listener waits for), then words, and only
for unbroken runs (CJK without spaces) a hard cut. Each piece carries the
pause that its seam asks for, since Kokoro's audio is trimmed at both ends.
A spoken reply (``SentenceBuffer``) starts with a shorter piece still: its
first clause or sentence, or its first few words.
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
# A reply's first piece is what the listener waits for: the first clause or sentence when it ends
# within this many characters (about four words), else the first words up to it. Kokoro's time grows
# with the piece (on two cores, arena on, at best: 4 words 0.8 s, 6 words 1.2 s, 10 words 1.5 s).
FIRST_REPLY_PIECE_CHARS = 24
# ...but never a lone word ("Well,"), which Kokoro, like "Hi.", says oddly.
MIN_FIRST_WORDS = 2
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


def _seams(text: str) -> list[tuple[int, float]]:
    """Where ``text``'s clauses and sentences end (followed by the next one's start), with their pauses."""
    seams = [(m.end(), CLAUSE_PAUSE) for m in _CLAUSE_END.finditer(text)]
    for match in _SENTENCE_END.finditer(text):
        if text[match.start()] == "." and match.group().strip() == "." and _is_abbreviation(text, match.start()):
            continue
        seams.append((match.end(), SENTENCE_PAUSE))
    return sorted(seams)


def first_piece(text: str, max_chars: int) -> tuple[TextPiece, str] | None:
    """The first piece of a reply that is still arriving, and the text after it; ``None`` while unknown.

    The first clause or sentence that holds ``MIN_FIRST_WORDS`` words (or ``MIN_PIECE_CHARS``
    characters, for CJK) and ends within ``max_chars``; failing that, once the text runs past
    ``max_chars``, its first words up to ``max_chars`` (never a hard cut: CJK waits for a seam).
    """
    for end, pause in _seams(text):
        head = " ".join(text[:end].split())
        if len(head) > max_chars:
            break
        if head and (len(head.split()) >= MIN_FIRST_WORDS or len(head) >= MIN_PIECE_CHARS):
            return TextPiece(head, pause), text[end:]
    runs = _words(text, max_chars)
    if len(runs) < 2:
        return None
    count = len(runs[0].split())
    words = list(re.finditer(r"\S+", text))
    if [w.group() for w in words[:count]] != runs[0].split():  # a word longer than max_chars, cut
        return None
    return TextPiece(runs[0]), text[words[count - 1].end() :]


class SentenceBuffer:
    """Text arriving in deltas (a model's tokens), handed out as pieces as soon as each is complete.

    A sentence is complete once the text after it has started. The first piece is the first clause
    or sentence, or the first words, up to ``first_chars`` (``first_piece``), so that the first
    audio starts after a few words; 0 treats it like the rest. Later pieces are whole sentences,
    cut only beyond ``max_chars``. ``flush`` hands out what is left when the stream ends.
    """

    def __init__(self, *, max_chars: int = MAX_PIECE_CHARS, first_chars: int = FIRST_REPLY_PIECE_CHARS) -> None:
        self.max_chars = max_chars
        self.first_chars = first_chars
        self.pending = ""
        self.emitted = 0

    def push(self, delta: str) -> list[TextPiece]:
        """Add a delta; the pieces it completed."""
        self.pending += delta
        first = self._first_piece(self.pending)
        return first + self._complete() if first else self._complete()

    def _first_piece(self, text: str) -> list[TextPiece]:
        """The first piece, once ``text`` holds it (consumed from ``pending``)."""
        if self.emitted or not self.first_chars:
            return []
        found = first_piece(text, self.first_chars)
        if found is None:
            return []
        piece, self.pending = found
        self.emitted = 1
        return [piece]

    def _complete(self) -> list[TextPiece]:
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
        # the stream's end ends the last clause too: a space lets first_piece see that seam
        pieces = self._first_piece(self.pending + " ")
        text, self.pending = self.pending, ""
        pieces += self._emit(text, 0.0)
        if pieces:
            pieces[-1] = TextPiece(pieces[-1].text, 0.0)
        return pieces

    def _emit(self, text: str, pause: float) -> list[TextPiece]:
        pieces = split_text(text, max_chars=self.max_chars, first_chars=self._first())
        if pieces:
            pieces[-1] = TextPiece(pieces[-1].text, pause)
        self.emitted += len(pieces)
        return pieces

    def _first(self) -> int:
        # with a first piece of its own (first_piece), the reply's sentences are cut only when too long
        return self.max_chars if self.emitted or self.first_chars else FIRST_PIECE_CHARS
