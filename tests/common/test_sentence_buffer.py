"""The incremental splitter that turns a model's tokens into pieces to speak."""

from __future__ import annotations

import re

from voicestack_common.text import SentenceBuffer, split_text


def feed(text: str, token: str = r"\S+\s*") -> list[list[str]]:
    """Pieces handed out after each token, then at the end."""
    buffer = SentenceBuffer()
    out = [[p.text for p in buffer.push(t)] for t in re.findall(token, text)]
    out.append([p.text for p in buffer.flush()])
    return out


def test_a_sentence_is_handed_out_once_the_next_one_starts() -> None:
    steps = feed("The sun is out today. Shall we go for a walk? Yes!")
    flat = [piece for step in steps for piece in step]
    assert flat == ["The sun is out today.", "Shall we go for a walk?", "Yes!"]
    # the first sentence leaves with the token that ends it (its full stop and the space after)
    assert steps[4] == ["The sun is out today."]


def test_short_sentences_and_abbreviations_wait() -> None:
    flat = [p for step in feed("Hi. Dr. Smith will see you at noon. Bye now.") for p in step]
    assert flat == ["Hi. Dr. Smith will see you at noon.", "Bye now."]


def test_a_long_first_sentence_is_cut_at_a_clause_before_it_ends() -> None:
    text = (
        "When you arrive at the station, take the second exit on the left, walk past the bakery and the "
        "post office, and keep going until you reach the old stone bridge over the river"
    )
    steps = feed(text)
    first_emitted = next(i for i, step in enumerate(steps) if step)
    assert first_emitted < len(steps) - 1  # before the stream ended
    assert " ".join(p for step in steps for p in step) == " ".join(p.text for p in split_text(text))


def test_character_deltas_give_the_same_pieces() -> None:
    text = "One sentence here. Another sentence there. And the last one"
    by_char = [p for step in feed(text, token=r".") for p in step]
    by_word = [p for step in feed(text) for p in step]
    assert by_char == by_word == ["One sentence here.", "Another sentence there.", "And the last one"]
