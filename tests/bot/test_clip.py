"""bot.characters.clip, the cut of text to a length with "…" (t2v.ellipsis's, with Discord's text kept whole), and the
places that cut with either: a /video style's choice name, an answer cut to one message, a gallery page's title, a
start's line about a path too long, a proxy's answer to the login. A cut never goes over its length, leaves no space
before the ellipsis, and never splits what reads as one character (an accent from its letter, an emoji sequence, a
flag) nor, in Discord's text, an escape, a mention or a link."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import discord
import pytest
import yarl
from hypothesis import given
from hypothesis import strategies as st

from bot.app import LOGIN_ANSWER_SHOWN, proxy_refused_login
from bot.characters import MESSAGE_CHARS, clip, shown
from bot.startup import PATH_SHOWN, writable_folder
from bot.ui.cogs.video import CHOICE_NAME_CHARS, _choice_name
from bot.ui.replies import fitting
from bot.web.pages import TITLE_CHARS, Server, video_page
from storage import ShowcaseRecord, ShowcaseState
from tests.bot.conftest import settings_for

ACCENT, ZWJ = "\u0301", "\u200d"  # a combining acute accent; a zero-width joiner
TECHNOLOGIST, FRANCE, WAVE = f"👩{ZWJ}💻", "🇫🇷", "👋🏽"  # a ZWJ sequence, a flag's pair, an emoji with its skin tone
INDICATORS = "".join(map(chr, range(0x1F1E6, 0x1F200)))  # a flag is two of them: 🇫🇷 is F and R
SYMBOLS = [f"e{ACCENT}", TECHNOLOGIST, FRANCE, WAVE, "a", " ", "  ", "\\*", "<@123456789012345678>", "x\n"]
# the escapes and tags come from SYMBOLS only, whole: a lone '<', '>' or backslash of random text is no tag or escape
PLAIN = st.text(st.characters(blacklist_characters="<>\\@"), max_size=6)
TEXTS = st.lists(st.one_of(st.sampled_from(SYMBOLS), PLAIN), max_size=60).map("".join)


def splits(kept: str, whole: str) -> bool:
    """Whether `kept`, the start of `whole`, ends inside a symbol: the character after it joins the one before."""
    after = whole[len(kept):len(kept) + 1]
    if not after:
        return False
    flags = len(kept) - len(kept.rstrip(INDICATORS))  # regional indicators at its end: an odd count ends half a flag
    return (unicodedata.category(after) in ("Mn", "Mc", "Me") or after == ZWJ or kept.endswith(ZWJ)
            or 0x1F3FB <= ord(after) <= 0x1F3FF or (after in INDICATORS and flags % 2 == 1))


@given(TEXTS, st.integers(1, 80))
def test_a_clipped_text_fits_is_the_texts_start_and_never_ends_in_a_space_or_half_a_symbol(text: str, limit: int):
    cut = clip(text, limit)

    assert len(cut) <= limit
    if len(text) <= limit:
        assert cut == text
    else:
        kept = cut.removesuffix("…")
        assert cut.endswith("…") and text.startswith(kept) and not kept[-1:].isspace() and not splits(kept, text)


@given(TEXTS, st.integers(1, 80))
def test_discords_text_clipped_keeps_escapes_and_tags_whole(text: str, limit: int):
    cut = clip(text, limit, discord=True)
    kept = cut.removesuffix("…")

    assert len(cut) <= limit and text.startswith(kept)
    if len(text) > limit:
        assert (len(kept) - len(kept.rstrip("\\"))) % 2 == 0  # no escape without the character it escapes
        assert kept.count("<@") == kept.count(">")  # a mention whole or left out


def cut_whole(cut: str, whole: str, limit: int) -> bool:
    """Whether `cut` fits `limit` and is `whole`, or its start cut between symbols with "…" after it."""
    kept = cut.removesuffix("…")
    return len(cut) <= limit and (cut == whole or (cut.endswith("…") and whole.startswith(kept)
                                                   and not splits(kept, whole)))


@pytest.mark.parametrize("symbol", [f"e{ACCENT}", TECHNOLOGIST, FRANCE, WAVE])
def test_a_path_setting_too_long_is_named_in_its_40_characters_cut_between_symbols(symbol: str):
    for offset in range(len(symbol)):  # the old value[:40] + "…" cut the symbol at each place, in 41 characters
        value = "x" * (40 - offset) + symbol * 80  # a name over the 255 bytes file systems take

        line = writable_folder("MEDIA_DIR", value, Path(value))

        assert line is not None and line.endswith("; set MEDIA_DIR to a shorter path")
        assert cut_whole(line.removeprefix("MEDIA_DIR=").split(": ")[0], value, PATH_SHOWN)


@pytest.mark.parametrize("symbol", [f"e{ACCENT}", TECHNOLOGIST, FRANCE, WAVE])
def test_a_proxys_long_answer_to_the_login_is_named_cut_between_symbols(symbol: str):
    class Response:
        status, reason, method = 404, "Not Found", "GET"
        url = yarl.URL("https://proxy.internal/users/@me")

    settings = settings_for("sqlite+aiosqlite:///x.db", discord_api_base="https://proxy.internal/api/v10")
    for offset in range(len(symbol)):  # the old text[:200] + "…" cut the symbol at each place, in 201 characters
        page = "x" * (LOGIN_ANSWER_SHOWN - offset) + symbol * 80

        line = proxy_refused_login(settings, discord.NotFound(Response(), page))

        assert line is not None
        said = line.split("was answered 404 Not Found: ")[1].split("; give the address")[0]
        assert cut_whole(said, page, LOGIN_ANSWER_SHOWN)


@pytest.mark.parametrize(("symbol", "shows"), [(f"e{ACCENT}", "é"), (TECHNOLOGIST, "👩‍💻"), (FRANCE, "🇫🇷"),
                                               (WAVE, "👋🏽")])
def test_a_style_choice_cut_at_discords_100_characters_keeps_the_last_symbol_whole(symbol: str, shows: str):
    # each offset puts the cut (the old text[:99]) at every place inside the symbol
    for offset in range(len(symbol)):
        name = _choice_name("retro", "x" * (99 - len("retro — ") - offset) + symbol * 10)

        assert len(name) <= CHOICE_NAME_CHARS and name.endswith("…")
        assert unicodedata.normalize("NFC", name).removesuffix("…").endswith((unicodedata.normalize("NFC", shows), "x"))


def test_a_style_choice_cut_after_a_space_has_no_gap_before_the_ellipsis():
    name = _choice_name("retro", "x" * (99 - len("retro — ") - 1) + " a long description of the style")

    assert name.endswith("x…") and len(name) <= CHOICE_NAME_CHARS


@pytest.mark.parametrize("whole", ["\\*", "<@123456789012345678>", "<https://example.com/a/page>"])
def test_an_answer_cut_to_one_message_keeps_an_escape_a_mention_and_a_link_whole(whole: str):
    for offset in range(1, len(whole)):  # the old text[:1999] cut `whole` at each place
        answer = fitting("x" * (MESSAGE_CHARS - 1 - offset) + whole + " and more" * 10)

        assert len(answer) <= MESSAGE_CHARS and answer.endswith("…")
        assert answer.removesuffix("…").lstrip("x") in ("", whole)


def test_shown_keeps_an_accent_with_its_letter_or_leaves_both_out():
    typed = f"cafe{ACCENT} " * 20  # "café", its é written as e and a combining accent, as some keyboards type it

    assert (shown(typed, 6), shown(typed, 5)) == (f"cafe{ACCENT}…", "caf…")


def _title(page: str) -> str:
    titles: list[str] = []

    class Reader(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "meta" and dict(attrs).get("property") == "og:title":
                titles.append(dict(attrs)["content"] or "")

    Reader().feed(page)
    return titles[0]


def _page(prompt: str) -> str:
    now = datetime(2026, 12, 7, tzinfo=UTC)
    entry = ShowcaseRecord(id=1, job_id=7, state=ShowcaseState.APPROVED, nominated_by=1, nominated_at=now,
                           decided_by=2, decided_at=now, reason=None, channel_id=None, message_id=None, votes=1,
                           prompt=prompt, author_id=3, author_name="Ann", job_deleted=False, guild_id=5)
    return video_page(entry, Server(5, "Art club", "/servers/5/"), "Video showcase", base="https://v.example.org",
                      poster=False)


@pytest.mark.parametrize("symbol", [f"e{ACCENT}", TECHNOLOGIST, FRANCE])
def test_a_gallery_title_cut_keeps_its_last_symbol_whole(symbol: str):
    for offset in range(len(symbol)):  # the old text[:89] cut `symbol` at each place
        title = _title(_page("a" * (TITLE_CHARS - 1 - offset) + symbol * 5))

        assert len(title) <= TITLE_CHARS and title.endswith("…")
        assert title.removesuffix("…").endswith((symbol, "a"))


def test_a_gallery_title_counts_a_prompts_line_breaks_as_the_one_space_the_page_shows():
    title = _title(_page("a lighthouse\n\n\n\n\n\n\n\n\n\nin a storm " + "b" * 60 + " at dusk"))

    assert title == "a lighthouse in a storm " + "b" * 60 + " at d…"  # 90 characters, as a prompt on one line
