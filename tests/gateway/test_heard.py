"""What the user heard of an interrupted reply, from the pieces sent and the playback position."""

from __future__ import annotations

from gateway.usecases.spoken_reply import SpokenPiece, heard_text


def piece(index: int, text: str, duration: float) -> SpokenPiece:
    return SpokenPiece(index, text, "", duration, 24_000, "wav")


PIECES = [piece(0, "One two three four.", 2.0), piece(1, "Five six seven eight.", 2.0)]


def test_without_a_position_everything_sent_counts() -> None:
    assert heard_text(PIECES, None) == "One two three four. Five six seven eight."


def test_a_position_inside_a_piece_keeps_its_share_of_words() -> None:
    assert heard_text(PIECES, 0.0) == ""
    assert heard_text(PIECES, 1.0) == "One two"
    assert heard_text(PIECES, 2.0) == "One two three four."
    assert heard_text(PIECES, 3.5) == "One two three four. Five six seven"
    assert heard_text(PIECES, 9.0) == "One two three four. Five six seven eight."
