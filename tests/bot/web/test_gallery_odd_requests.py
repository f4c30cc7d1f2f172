"""The gallery met the way strangers and odd clients meet it: Range headers that are not one plain byte range, and
counts given twice."""

import ast
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
import regex

from bot.characters import clip
from tests.bot.web.test_gallery import World, fetch, opened


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with opened(tmp_path) as made:
        yield made


@pytest.mark.parametrize("asked", ["bytes=0-0,5-10", "bytes=0-99, 200-299", "items=0-5", "Bytes=0-1,-1"])
async def test_several_ranges_or_another_unit_get_the_whole_video_not_a_416(world: World, asked: str):
    """RFC 9110 §14.2: a server may ignore a Range (and must ignore another unit than bytes); aiohttp alone answered
    these 416 with `bytes */size`, as if the video were shorter than asked."""
    job_id = await world.approved("a spinning top")
    data = world.media.path(job_id).read_bytes()

    status, headers, body = await fetch(f"{world.url}/videos/{job_id}.mp4", Range=asked)

    assert (status, body) == (200, data) and headers["Content-Type"] == "video/mp4"
    assert headers["Cache-Control"] == "public, max-age=86400, immutable" and "Content-Range" not in headers


@pytest.mark.parametrize(("asked", "served"), [
    ("bytes= 0-5", slice(0, 6)), ("bytes=10 - 19 ", slice(10, 20)),  # spaces the list syntax allows
    ("bytes=100-" + "9" * 5000, slice(100, None)),  # an end past the file, in thousands of digits
    ("bytes=-" + "9" * 5000, slice(0, None)),
])
async def test_one_byte_range_however_written_is_served(world: World, asked: str, served: slice):
    job_id = await world.approved("a spinning top")
    data = world.media.path(job_id).read_bytes()

    status, headers, body = await fetch(f"{world.url}/videos/{job_id}.mp4", Range=asked)

    first, last = served.start or 0, (served.stop or len(data)) - 1
    assert (status, body) == (206, data[served]), (asked, status, body[:200])
    assert headers["Content-Range"] == f"bytes {first}-{last}/{len(data)}"


@pytest.mark.parametrize(("asked", "says"), [
    ("bytes=5-2", "is no byte range such as bytes=0-1023, bytes=1024- or bytes=-1024 (the video has {size} bytes)"),
    ("bytes=abc", "is no byte range such as bytes=0-1023, bytes=1024- or bytes=-1024 (the video has {size} bytes)"),
    ("bytes", "is no byte range such as bytes=0-1023, bytes=1024- or bytes=-1024 (the video has {size} bytes)"),
    ("bytes=-0", "asks for none of the video's {size} bytes (0 to {last})"),
    ("bytes=999999-", "asks for none of the video's {size} bytes (0 to {last})"),
    ("bytes=" + "9" * 5000 + "-", "asks for none of the video's {size} bytes (0 to {last})"),
])
async def test_a_range_that_is_no_byte_range_or_asks_for_no_byte_is_a_416_line_naming_it(world: World, asked: str,
                                                                                         says: str):
    """aiohttp alone answered these with an empty 416 (and `bytes=-0` with the whole video as a 206)."""
    job_id = await world.approved("a spinning top")
    size = world.media.path(job_id).stat().st_size

    status, headers, body = await fetch(f"{world.url}/videos/{job_id}.mp4", Range=asked)

    assert status == 416 and headers["Content-Range"] == f"bytes */{size}"
    assert body.decode() == f"Range {clip(asked, 80)!r} " + says.format(size=size, last=size - 1)  # "…" if cut
    assert headers["Content-Type"] == "text/plain; charset=utf-8" and "Cache-Control" not in headers


async def test_a_posters_range_is_read_the_same_way(world: World):
    job_id = await world.approved("a spinning top")
    jpeg = world.media.poster_path(job_id).read_bytes()

    part = await fetch(f"{world.url}/videos/{job_id}.jpg", Range="bytes= 0-1")
    whole = await fetch(f"{world.url}/videos/{job_id}.jpg", Range="bytes=0-1,4-5")
    nothing = await fetch(f"{world.url}/videos/{job_id}.jpg", Range=f"bytes={len(jpeg)}-")

    assert (part[0], part[2]) == (206, jpeg[:2]) and (whole[0], whole[2]) == (200, jpeg)
    assert (nothing[0], nothing[2].decode()) == (
        416, f"Range 'bytes={len(jpeg)}-' asks for none of the poster's {len(jpeg)} bytes (0 to {len(jpeg) - 1})")


@pytest.mark.parametrize(("query", "says"), [
    ("per_page=1&per_page=0", "per_page must be given once, got it 2 times ('1', '0')"),  # the 0 went unread
    ("page=2&page=1", "page must be given once, got it 2 times ('2', '1')"),
    ("page=1&per_page=4&page=1", "page must be given once, got it 2 times ('1', '1')"),
])
async def test_a_count_given_twice_gets_one_400_line_naming_both(world: World, query: str, says: str):
    """The first value was read and the others went unread: `per_page=0` was refused alone and passed second."""
    await world.approved("a calm lake")

    status, _, body = await fetch(f"{world.url}/?{query}", redirect=False)

    assert (status, body.decode()) == (400, says)


@pytest.mark.parametrize("symbol", ["e\u0301", "👩\u200d💻", "🇫🇷", "👋🏽"])  # accent, ZWJ sequence, flag, skin tone
async def test_a_long_count_given_twice_is_named_in_40_characters_cut_between_symbols(world: World, symbol: str):
    """The old value[:40] split the accent from its letter, half a flag or an emoji sequence, and said nothing of
    the rest: now the cut keeps what reads as one character whole and ends with "…"."""
    for offset in range(len(symbol)):  # value[:40] cut the symbol at each place
        value = "x" * (40 - offset) + symbol * 20

        status, _, body = await fetch(f"{world.url}/?{urlencode({'page': value})}&page=1", redirect=False)

        said = body.decode().removeprefix("page must be given once, got it 2 times (")
        shown, second = ast.literal_eval(said.removesuffix(")"))
        clusters = regex.findall(r"\X", value)
        assert (status, second) == (400, "1") and len(shown) <= 40 and shown.endswith("…")
        assert shown.removesuffix("…") in {"".join(clusters[:count]) for count in range(len(clusters))}


@pytest.mark.parametrize("path", ["/videos/2147483648", "/videos/2147483648.mp4", "/videos/9223372036854775807.jpg"])
async def test_a_job_id_past_what_the_jobs_table_holds_is_a_404_on_postgresql_too(world: World, monkeypatch, path: str):
    """jobs.id is a 32-bit INTEGER: PostgreSQL answers a larger id in a query with an error (asyncpg: "value out of
    int32 range"), which was a 500 for /videos/2147483648.mp4. The repository here answers as PostgreSQL would."""
    from sqlalchemy.exc import DBAPIError

    from storage import MAX_JOB_ID

    shown = world.showcase.shown

    async def like_postgresql(job_id: int):
        if job_id > MAX_JOB_ID:
            raise DBAPIError("SELECT ...", {"job_id": job_id}, OverflowError("value out of int32 range"))
        return await shown(job_id)

    monkeypatch.setattr(world.showcase, "shown", like_postgresql)
    await world.approved("a calm lake")

    status, _, body = await fetch(f"{world.url}{path}")

    assert status == 404, body[:200]  # the not-found page, or "job … is not in the showcase" for a file


async def test_an_approved_video_whose_file_was_removed_by_hand_says_so_instead_of_a_player_that_will_not_play(
        world: World):
    """Its tile and its page offered a <video> (and the page's link preview an og:video) that every browser and
    Discord failed to load, each try a WARNING in the log."""
    from bot.web.pages import GONE

    kept = await world.approved("a kept lighthouse")
    gone = await world.approved("a removed lighthouse", kept=False)

    _, _, listing = await fetch(f"{world.url}/")
    status, _, page = await fetch(f"{world.url}/videos/{gone}")
    listing, page = listing.decode(), page.decode()

    assert f'<video src="/videos/{kept}.mp4"' in listing and f'<video src="/videos/{gone}.mp4"' not in listing
    assert f'<article class="card" id="job-{gone}"><div class="tile gone">{GONE}</div>' in listing
    assert status == 200 and GONE in page and "<video" not in page
    assert 'property="og:video' not in page and 'property="og:image' not in page
    assert 'property="og:type" content="website"' in page and "a removed lighthouse" in page


async def test_a_removed_video_asked_again_and_again_is_logged_once(world: World, caplog):
    # was: a WARNING at each request, so anyone could fill a public gallery's log with them
    gone = await world.approved("a removed lighthouse", kept=False)

    answers = [await fetch(f"{world.url}/videos/{gone}.mp4") for _ in range(5)]

    assert [status for status, _, _ in answers] == [404] * 5
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        f"showcase job {gone} is approved but {world.media.path(gone)} is missing"]
