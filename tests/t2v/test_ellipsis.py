"""t2v.ellipsis, the one cut of text with "…", and t2v's own line that cuts with it: a path's name too long for any
file system. A cut never goes over its length and never splits what reads as one character (an accent from its
letter, an emoji sequence, a flag): what is kept is the text's first grapheme clusters (regex's \\X)."""

from __future__ import annotations

import pytest
import regex

from t2v import ellipsis
from t2v.preflight import NAME_SHOWN, path_length

ACCENT, ZWJ = "\u0301", "\u200d"  # a combining acute accent; a zero-width joiner
SYMBOLS = [f"e{ACCENT}", f"👩{ZWJ}💻", "🇫🇷", "👋🏽"]  # a letter and its accent, a ZWJ sequence, a flag, a skin tone


def whole_symbols(cut: str, text: str) -> bool:
    """Whether `cut` is `text`, or `text`'s first grapheme clusters followed by "…"."""
    clusters = regex.findall(r"\X", text)
    starts = {"".join(clusters[:count]) for count in range(len(clusters) + 1)}
    return cut == text or (cut.endswith("…") and cut.removesuffix("…") in starts)


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_a_cut_keeps_the_last_symbol_whole_and_fits(symbol: str):
    for offset in range(len(symbol)):  # the cut falls at each place inside the symbol
        text = "x" * (9 - offset) + symbol * 10

        assert len(ellipsis.clip(text, 10)) <= 10 and whole_symbols(ellipsis.clip(text, 10), text)


def test_a_text_that_fits_is_kept_and_a_space_is_never_left_before_the_ellipsis():
    assert ellipsis.clip("a calm lake", 11) == "a calm lake"
    assert ellipsis.clip("a calm lake", 8) == "a calm…"


@pytest.mark.parametrize("limit", [0, -3])
def test_a_length_below_one_is_refused_naming_it(limit: int):
    with pytest.raises(ValueError, match=f"a text is cut to 1 character or more, not {limit}$"):
        ellipsis.clip("a calm lake", limit)


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_a_name_too_long_for_file_systems_is_shown_cut_between_symbols(symbol: str):
    for offset in range(len(symbol)):  # the old name[:20] cut the symbol at each place
        name = "x" * (20 - offset) + symbol * 80  # over 255 bytes
        problem = path_length(f"videos/{name}")

        assert problem is not None and problem.startswith("the name ")
        shown = problem.removeprefix("the name ").split(" is ")[0]
        assert len(shown) <= NAME_SHOWN and whole_symbols(shown, name) and shown != name
