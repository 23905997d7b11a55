"""The incremental splitter that turns a model's tokens into pieces to speak."""

from __future__ import annotations

import re

import pytest

from voicestack_common.text import CLAUSE_PAUSE, SentenceBuffer, first_piece, split_text


def feed(text: str, token: str = r"\S+\s*", first_chars: int = 32) -> list[list[str]]:
    """Pieces handed out after each token, then at the end."""
    buffer = SentenceBuffer(first_chars=first_chars)
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
    flat = [p for step in feed("Sure thing. Hi. Dr. Smith will see you at noon. Bye now.") for p in step]
    assert flat == ["Sure thing.", "Hi. Dr. Smith will see you at noon.", "Bye now."]


def test_the_first_piece_is_the_first_clause_and_leaves_as_the_next_word_starts() -> None:
    steps = feed("You said: What is the weather like in Paris today?")
    assert steps[0] == []  # "You said:" may go on ("You said: ok"), not yet
    assert steps[1] == ["You said:"]
    assert [p for step in steps[2:] for p in step] == ["What is the weather like in Paris today?"]


def test_a_first_sentence_without_a_seam_starts_with_its_first_words() -> None:
    text = "When you arrive at the station take the second exit on the left and walk past the bakery."
    steps = feed(text, first_chars=32)
    first_emitted = next(i for i, step in enumerate(steps) if step)
    assert steps[first_emitted] == ["When you arrive at the station"]
    assert first_emitted == 6  # as soon as the seventh word has started: not a word more
    assert [p for step in steps[first_emitted + 1 :] for p in step] == [
        "take the second exit on the left and walk past the bakery."
    ]


@pytest.mark.parametrize(
    ("text", "first"),
    [
        ("Well, I think the weather in Paris is rather nice. Bring a coat.", "Well, I think the weather in"),
        ("Hi. How are you doing on this fine day?", "Hi. How are you doing on this"),
        ("Sure thing, here it is.", "Sure thing,"),
        ("Yes. That is right. ", "Yes. That is right."),
        ("A first clause that is far too long to wait for, then a second.", "A first clause that is far too"),
    ],
)
def test_the_first_piece_holds_two_words_at_least_and_fits_the_limit(text: str, first: str) -> None:
    found = first_piece(text, 32)
    assert found is not None
    piece, rest = found
    assert piece.text == first
    assert len(piece.text) <= 32
    assert " ".join(f"{piece.text} {rest}".split()) == " ".join(text.split())


def test_the_first_piece_waits_while_it_is_unknown() -> None:
    assert first_piece("You said: ", 32) is not None
    assert first_piece("You said:", 32) is None  # "said:" might still be "said:30" for all we know
    assert first_piece("Well, ", 32) is None  # one word: wait for more
    assert first_piece("A short sentence without", 32) is None
    assert first_piece("今日は" * 20, 32) is None  # no hard cut: unbroken text waits for its seam


def test_the_first_piece_cut_at_a_clause_pauses_like_a_clause() -> None:
    found = first_piece("You said: hello there", 32)
    assert found is not None
    assert found[0].pause_after == CLAUSE_PAUSE


def test_a_whole_reply_in_one_delta_still_starts_short() -> None:
    buffer = SentenceBuffer()  # the gateway's default: the echo responder's reply
    pieces = buffer.push("You said: What is the weather like in Paris today?") + buffer.flush()
    assert [p.text for p in pieces] == ["You said:", "What is the weather like in Paris today?"]
    assert pieces[-1].pause_after == 0.0


def test_first_chars_zero_keeps_whole_sentences() -> None:
    flat = [p for step in feed("You said: What is the weather like in Paris today?", first_chars=0) for p in step]
    assert flat == ["You said: What is the weather like in Paris today?"]


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
