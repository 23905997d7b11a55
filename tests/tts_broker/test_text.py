"""Splitting text at sentence and clause seams, for streaming and for Kokoro's context."""

from __future__ import annotations

import pytest

from voicestack_common.text import (
    CLAUSE_PAUSE,
    FIRST_PIECE_CHARS,
    MAX_PIECE_CHARS,
    SENTENCE_PAUSE,
    sentences,
    split_text,
)


def texts(text: str) -> list[str]:
    return [piece.text for piece in split_text(text)]


def test_sentences_are_pieces_with_a_pause_between() -> None:
    pieces = split_text("Hello world. How are you today? I am fine!")
    assert [p.text for p in pieces] == ["Hello world.", "How are you today?", "I am fine!"]
    assert [p.pause_after for p in pieces] == [SENTENCE_PAUSE, SENTENCE_PAUSE, 0.0]


@pytest.mark.parametrize(
    "text",
    [
        "Mr. Smith met Dr. Jones at the station.",
        "J. R. R. Tolkien wrote it, e.g. this one.",
        "Pi is 3.14159 and that is exact enough.",
        "It starts at 9 a.m. sharp for everyone here.",
    ],
)
def test_abbreviations_initials_and_numbers_do_not_end_a_sentence(text: str) -> None:
    assert sentences(text) == [text]


def test_quotes_stay_with_their_sentence() -> None:
    assert texts('"Is it ready?" she asked. Yes it is.') == ['"Is it ready?"', "she asked. Yes it is."]


def test_a_long_first_sentence_is_cut_at_a_clause_so_audio_starts_early() -> None:
    first = "This opening sentence runs on for quite a while, with several clauses in it,"
    text = f"{first} and it only ends here after well over a hundred characters."
    pieces = split_text(text)
    assert pieces[0].text == first
    assert pieces[0].pause_after == CLAUSE_PAUSE
    assert len(pieces[0].text) <= FIRST_PIECE_CHARS
    assert " ".join(p.text for p in pieces) == text


def test_later_sentences_are_kept_whole_up_to_the_limit() -> None:
    second = "A second sentence, with a clause, that is longer than the first piece limit of one hundred chars."
    assert texts(f"Short first one. {second}") == ["Short first one.", second]


def test_tiny_sentences_join_the_next_one() -> None:
    assert texts("Hi. OK. This is the actual sentence.") == ["Hi. OK. This is the actual sentence."]


def test_no_piece_is_over_the_limit_and_no_word_is_lost() -> None:
    text = " ".join(f"word{i}" for i in range(400))  # no punctuation at all
    pieces = texts(text)
    assert all(len(p) <= MAX_PIECE_CHARS for p in pieces)
    assert " ".join(pieces).split() == text.split()


def test_a_run_without_spaces_is_cut_hard() -> None:
    pieces = texts("x" * 700)
    assert [len(p) for p in pieces] == [300, 300, 100]


def test_japanese_sentence_marks_split_without_spaces() -> None:
    assert sentences("今日は晴れです。明日は雨が降るでしょう！") == ["今日は晴れです。", "明日は雨が降るでしょう！"]


def test_whitespace_is_collapsed_and_blank_text_has_no_pieces() -> None:
    assert texts("  Hello\n  there,\tfriend.  ") == ["Hello there, friend."]
    assert split_text(" \n\t ") == []
