"""bot.characters' shown and clipped for any input (hypothesis): an echoed text is clipped between pieces, so a link
never comes out half-wrapped (live, unfurling) and an escape never loses the character it escapes; a list answer
always fits one message, "… and N more" included. Moderators' text goes through the same escaper as prompts."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.characters import MESSAGE_CHARS, clipped, shown

LINK = re.compile(r"(?:https?|ftp|discord)://|www\.", re.IGNORECASE)  # where a link starts, wrapped or not
WRAPPED = re.compile(r"<(?:https?|ftp|discord)://[^\s<>]+>|<www\.[^\s<>]+>", re.IGNORECASE)
URLS = st.sampled_from(["https://example.com/some/long/path/to/the/page", "www.example.org/x_y", "ftp://a.b/c*d",
                        "http://x.io/(a)", "discord://invite", "https://e.com/@everyone"])
PIECES = st.one_of(URLS, st.sampled_from(["*", "_", "\\", "~", "|", "`", "@everyone", "<@123456789012345678>",
                                          "[x](y)", "# ", "> ", "-# ", " ", "a", "snow", "<", ">", "…"]),
                   st.text(max_size=8))
TEXTS = st.lists(PIECES, max_size=40).map(" ".join)


def live_links(text: str) -> list[str]:
    """The links in `text` that are not wrapped whole in <...>, which Discord would unfurl."""
    return [match.group() for match in LINK.finditer(WRAPPED.sub(" ", text))]


def trailing_escapes(text: str) -> int:
    """How many backslashes end `text`, before any ellipsis: an odd count escapes nothing (one was cut in half)."""
    body = text.removesuffix("…")
    return len(body) - len(body.rstrip("\\"))


@given(text=TEXTS, limit=st.integers(1, 800))
def test_a_clipped_text_fits_keeps_links_whole_and_never_ends_in_half_an_escape(text: str, limit: int):
    result = shown(text, limit)
    assert len(result) <= limit
    assert live_links(result) == live_links(shown(text, 10_000)) == []  # every "<" that opens a link is closed
    assert trailing_escapes(result) % 2 == 0
    if result != shown(text, 10_000):
        assert result.endswith("…") and shown(text, 10_000).startswith(result[:-1])


def test_a_link_that_does_not_fit_is_left_out_whole():
    prompt = "a red fox running in the snow " + "*" * 312 + " https://example.com/some/long/path/to/the/page"
    assert shown(prompt) == "a red fox running in the snow " + "\\*" * 312 + "…"
    assert shown(prompt, 1000).endswith(" <https://example.com/some/long/path/to/the/page>")


@given(entries=st.lists(st.text(max_size=300), max_size=60), limit=st.integers(40, 3000), more=st.integers(0, 10**6),
       sep=st.sampled_from(["\n", ", "]))
def test_a_clipped_list_fits_and_counts_what_it_left_out(entries: list[str], limit: int, more: int, sep: str):
    def keeping(n: int) -> str:  # the first n entries and the count of the rest
        left = len(entries) - n + more
        return sep.join([*entries[:n], *([f"… and {left} more"] if left else [])])

    result = clipped(entries, limit, more=more, sep=sep)
    assert len(result) <= limit
    assert result == keeping(max((n for n in range(len(entries) + 1) if len(keeping(n)) <= limit), default=0))


def test_the_tail_never_pushes_a_full_message_over_discords_limit():
    lines = ["• " + "x" * 97] * 19 + ["• " + "y" * 98]  # exactly 2000 characters with their newlines
    assert len(clipped(lines)) == MESSAGE_CHARS
    answer = clipped(lines, more=7)  # the tail needs room: whole entries make it
    assert len(answer) <= MESSAGE_CHARS and answer.endswith("\n… and 8 more")


@pytest.mark.parametrize(("typed", "escaped"), [
    ("<t:0:R>", r"\<t:0:R>"),  # a timestamp: Discord would show "56 years ago"
    ("<:pepe_x:123456789012345678>", r"\<:pepe\_x:123456789012345678>"),  # an emoji image the denylist never read
    ("<a:dance:123456789012345678>", r"\<a:dance:123456789012345678>"),
    ("</video make:123456789012345678>", r"\</video make:123456789012345678>"),  # a clickable command
    ("<#123456789012345678>", r"\<#123456789012345678>"),  # a channel's name
    ("<id:customize>", r"\<id:customize>"),
    ("<@123456789012345678>", "\\<@\u200b123456789012345678>"),
    ("I <3 cats, a < b > c", "I <3 cats, a < b > c"),  # no tag: as typed
])
def test_discords_tags_show_as_typed_not_as_what_discord_draws(typed: str, escaped: str):
    assert shown(typed) == escaped


def test_a_moderators_text_shows_as_typed_on_one_line_without_controls():
    assert shown("**bold** <@123> @everyone `x`") == "\\*\\*bold\\*\\* \\<@123> @\u200beveryone \\`x\\`"
    assert shown("a\n\nb   c") == "a b c"
    assert shown("x" * 50, 10) == "xxxxxxxxx…"
    assert shown("see \u202egnp.exe\x07") == "see gnp.exe"  # a right-to-left override would reorder what follows
    assert shown("spam\x0bscam\x85now") == "spam scam now"  # control characters that separate words still do
    assert shown("reason: see https://evil.example/x.") == "reason: see <https://evil.example/x>."  # no preview
