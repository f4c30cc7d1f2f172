"""The web gallery: pages of approved videos, escaped text, 400s naming the range, the not-found page, blocked
members' videos hidden, range requests, and real playback in headless Chromium (driven through the DevTools
protocol)."""

import asyncio
import base64
import hashlib
import json
import os
import re
import shutil
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image, ImageStat

from bot.app import run
from bot.characters import UNSAFE_RE
from bot.media import MediaStore
from bot.web.gallery import Gallery
from storage import GLOBAL, ModerationRepository, Repository, create_engine, migrate, utc_now
from storage.showcase import ShowcaseRepository
from tests.bot.conftest import settings_for
from tests.bot.helpers import WAIT, tiny_mp4
from tests.ci import missing
from tests.net import free_port

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SERVER, OTHER = 3, 4  # the servers the videos were made in
PARAMS = {"steps": 3, "guidance": 9.0, "frames": 16, "aspect": "1:1", "width": 64, "height": 64, "fps": 8}


@dataclass
class World:
    """A migrated database, a media directory and a running gallery."""

    jobs: Repository
    showcase: ShowcaseRepository
    moderation: ModerationRepository
    media: MediaStore
    url: str

    async def approved(self, prompt: str, author: str = "bob", votes: int = 0, server: int = SERVER,
                       kept: bool = True, width: int = 64, user: int = 1) -> int:
        """A finished job of `user` in `server` whose kept video (`width`×64; none unless `kept`) was nominated and
        approved; returns its job id."""
        job = await self.jobs.create_job(user_id=user, user_name=author, channel_id=2, guild_id=server, prompt=prompt,
                                         params=PARAMS)
        await self.jobs.mark_running(job.id)
        await self.jobs.mark_done(job.id, seed=1, gpu_s=0.1, output_bytes=1)
        if kept:
            await self.media.save(job.id, tiny_mp4(width))
        entry = await self.showcase.nominate(job.id, 5)
        await self.showcase.decide(job.id, guild_id=server, approve=True, moderator_id=9)
        for voter in range(votes):
            await self.showcase.toggle_vote(entry.id, 100 + voter)
        return job.id


@asynccontextmanager
async def opened(tmp_path: Path, **options: Any) -> AsyncIterator[World]:
    """A world whose gallery has these options (front_page, server_name)."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    await migrate(engine)
    showcase, media = ShowcaseRepository(engine), MediaStore(tmp_path / "media")
    gallery = Gallery(showcase, media, **options)
    port = await gallery.start("127.0.0.1", 0)
    try:
        yield World(Repository(engine), showcase, ModerationRepository(engine), media, f"http://127.0.0.1:{port}")
    finally:
        await gallery.stop()
        await engine.dispose()


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with opened(tmp_path) as made:
        yield made


async def fetch(url: str, *, redirect: bool = True, **headers: str) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers,
                                                               allow_redirects=redirect) as response:
        return response.status, dict(response.headers), await response.read()


async def test_pages_list_approved_videos_newest_first_with_author_votes_and_date(world: World):
    for n in range(5):
        await world.approved(f"prompt number {n}", author=f"author{n}", votes=n)

    status, headers, body = await fetch(f"{world.url}/?page=2&per_page=2")
    page = body.decode()

    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Cache-Control"] == "public, max-age=60"
    assert page.index("prompt number 2") < page.index("prompt number 1")
    assert "prompt number 4" not in page and "prompt number 0" not in page
    assert '<span class="who" title="author2">by author2</span>' in page and "<span>⭐ 2 votes</span>" in page
    assert 'src="/videos/3.mp4" poster="/videos/3.jpg"' in page and '<a class="prompt" href="/videos/3"' in page
    assert 'aria-label="Video by author2: prompt number 2"' in page
    assert "Page 2 of 3" in page and "?page=1&amp;per_page=2" in page and "?page=3&amp;per_page=2" in page


@pytest.mark.parametrize(("query", "says"), [
    ("page=0", "page must be a whole number of 1 or more, got '0'"),
    ("page=two", "page must be a whole number of 1 or more, got 'two'"),
    ("page=1_0", "page must be a whole number of 1 or more, got '1_0'"),
    ("per_page=0", "per_page must be a whole number of 1 or more (pages show at most 50), got '0'"),
    ("per_page=-3&page=1", "per_page must be a whole number of 1 or more (pages show at most 50), got '-3'"),
])
async def test_a_value_that_is_not_a_count_gets_one_400_line_naming_it(world: World, query: str, says: str):
    await world.approved("a calm lake", votes=1)

    status, _, body = await fetch(f"{world.url}/?{query}")

    assert status == 400 and body.decode() == says


@pytest.mark.parametrize(("path", "query", "lands_on"), [
    ("/", "page=9", "/?page=1"),  # 12 a page
    ("/", "page=9&per_page=2", "/?page=3&per_page=2"),
    ("/", "page=9&per_page=100", "/?page=1&per_page=50"),  # capped first: 5 videos fit one page of 50
    (f"/servers/{SERVER}/", "page=4&per_page=4", f"/servers/{SERVER}/?page=2&per_page=4"),
])
async def test_a_page_past_the_end_redirects_to_the_last(tmp_path: Path, path: str, query: str, lands_on: str):
    async with opened(tmp_path) as world:
        for n in range(5):
            await world.approved(f"video {n}", kept=False)
        status, headers, _ = await fetch(f"{world.url}{path}?{query}", redirect=False)
        landed, _, body = await fetch(f"{world.url}{headers['Location']}")

    assert status == 303 and headers["Location"] == lands_on
    assert landed == 200 and "video 0" in body.decode()  # the oldest: on the last page


async def test_per_page_above_the_cap_shows_the_most_a_page_holds(world: World):
    for n in range(51):
        await world.approved(f"video {n}", kept=False)  # the listing reads the database only

    status, _, body = await fetch(f"{world.url}/?per_page=100")
    page = body.decode()

    assert status == 200 and page.count('<article class="card"') == 50
    assert "Page 1 of 2" in page and "?page=2&amp;per_page=50" in page


async def test_an_empty_gallery_says_how_videos_get_there(world: World):
    status, _, body = await fetch(f"{world.url}/")
    page = body.decode()

    assert status == 200 and "No videos in the showcase yet." in page and "Page 1 of 1" in page
    assert "⭐ Showcase button" in page and "<code>/videomod showcase pending</code>" in page


async def test_prompts_and_names_are_escaped_and_no_script_but_the_gallerys_own_runs(world: World):
    job_id = await world.approved('<script>alert("x")</script> & <img src=x onerror=alert(1)>', author="<b>Eve\"</b>")

    _, headers, body = await fetch(f"{world.url}/")
    _, _, single = await fetch(f"{world.url}/videos/{job_id}")
    page, one = body.decode(), single.decode()

    for html in (page, one):
        assert "<script>alert" not in html and "<img" not in html and "<b>Eve" not in html
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;img src=x onerror=alert(1)&gt;" in html
        assert "by &lt;b&gt;Eve&quot;&lt;/b&gt;" in html
    assert 'title="&lt;b&gt;Eve&quot;&lt;/b&gt;"' in page  # inside an attribute, the quote is escaped too
    scripts = re.findall(r"<script>(.*?)</script>", page, re.S)
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    csp = headers["Content-Security-Policy"]
    assert len(scripts) == 1 and f"script-src 'sha256-{digest}'" in csp and "unsafe-inline'; base" not in csp
    assert "default-src 'none'" in csp and "<script" not in one


async def test_direction_overrides_and_control_characters_in_names_and_prompts_never_reach_a_page(tmp_path: Path):
    """A name or prompt with a right-to-left override would show the text after it reversed (a server's name before
    " · Video showcase", an author's before the votes in a link preview); with a NUL or ESC it is garbled."""
    async with opened(tmp_path, server_name={SERVER: "Art\u202e club\x00"}.get) as world:
        job_id = await world.approved("a calm\u2066 lake\x1b", author="Eve\u202eevil\u200f")
        pages = [(await fetch(f"{world.url}{path}"))[2].decode()
                 for path in ("/", f"/servers/{SERVER}/", f"/videos/{job_id}")]

    for page in pages:
        assert not UNSAFE_RE.search(page), [f"U+{ord(c):04X}" for c in UNSAFE_RE.findall(page)]
        assert "Art club" in page and "a calm lake" in page and "Eve evil" in page  # as Discord shows them (inert)
    assert meta_tags(pages[2])["og:description"] == "by Eve evil · ⭐ 0 votes"


@pytest.mark.parametrize(("path", "headers", "status"), [
    ("/no-such-page", {}, 404),
    ("/?page=<script>alert(1)</script>", {}, 400),  # the value is named in the answer
    ("/videos/1", {}, 200),
    ("/videos/1.mp4", {"Range": "bytes=999999-"}, 416),
    ("/videos/1.mp4", {"Range": "bytes=0-99"}, 206),
])
async def test_every_answer_errors_included_is_never_sniffed_and_no_error_is_kept_in_a_cache(
        world: World, path: str, headers: dict[str, str], status: int):
    await world.approved("a calm lake")

    got, answer, _ = await fetch(f"{world.url}{path}", **headers)

    assert got == status
    assert answer["X-Content-Type-Options"] == "nosniff" and "default-src 'none'" in answer["Content-Security-Policy"]
    assert ("max-age" in answer.get("Cache-Control", "")) == (status < 400)  # a 416 must not stay for a day


async def test_videos_are_served_as_mp4_with_range_requests(world: World):
    job_id = await world.approved("a spinning top")
    data = world.media.path(job_id).read_bytes()

    full = await fetch(f"{world.url}/videos/{job_id}.mp4")
    part = await fetch(f"{world.url}/videos/{job_id}.mp4", Range="bytes=100-199")
    tail = await fetch(f"{world.url}/videos/{job_id}.mp4", Range="bytes=-50")
    async with aiohttp.ClientSession() as session, session.head(f"{world.url}/videos/{job_id}.mp4") as head:
        asked = head.status, head.headers["Content-Length"], head.headers["Accept-Ranges"], await head.read()

    assert full[0] == 200 and full[1]["Content-Type"] == "video/mp4" and full[2] == data
    assert full[1]["Accept-Ranges"] == "bytes" and full[1]["Cache-Control"] == "public, max-age=86400, immutable"
    assert part[0] == 206 and part[1]["Content-Range"] == f"bytes 100-199/{len(data)}" and part[2] == data[100:200]
    assert tail[0] == 206 and tail[2] == data[-50:]
    assert asked == (200, str(len(data)), "bytes", b"")  # HEAD: what an embedder asks before it fetches


async def test_posters_are_served_and_made_for_videos_kept_without_one(world: World):
    kept, older, broken = await world.approved("kept today"), await world.approved("kept last year"), \
        await world.approved("a broken file")
    world.media.poster_path(older).unlink()  # kept before posters were made
    world.media.path(broken).write_bytes(b"not an mp4")
    world.media.poster_path(broken).unlink()

    status, headers, poster = await fetch(f"{world.url}/videos/{kept}.jpg")
    made, _, later = await fetch(f"{world.url}/videos/{older}.jpg")
    missing, _, says = await fetch(f"{world.url}/videos/{broken}.jpg")
    page, _, listing = await fetch(f"{world.url}/")
    single, _, alone = await fetch(f"{world.url}/videos/{broken}")

    assert status == 200 and headers["Content-Type"] == "image/jpeg" and poster.startswith(b"\xff\xd8")
    assert headers["Cache-Control"] == "public, max-age=86400, immutable"
    assert made == 200 and later.startswith(b"\xff\xd8") and world.media.poster_path(older).is_file()
    assert (missing, says.decode()) == (404, f"the video of job {broken} has no poster frame")
    assert page == 200 and "a broken file" in listing.decode()  # a missing poster never breaks a page
    assert single == 200 and "og:image" not in alone.decode() and 'content="summary"' in alone.decode()


async def test_only_approved_undeleted_videos_are_served(world: World):
    shown, gone = await world.approved("shown"), await world.approved("deleted later")
    waiting = await world.jobs.create_job(user_id=1, user_name="bob", channel_id=2, prompt="waiting", params=PARAMS)
    await world.media.save(waiting.id, b"not approved")
    await world.showcase.delete_job(gone)

    jobs = (shown, gone, waiting.id, 999)
    statuses = {ending: [(await fetch(f"{world.url}/videos/{job}{ending}"))[0] for job in jobs]
                for ending in (".mp4", ".jpg", "")}
    _, _, body = await fetch(f"{world.url}/")

    assert statuses == {".mp4": [200, 404, 404, 404], ".jpg": [200, 404, 404, 404], "": [200, 404, 404, 404]}
    assert "deleted later" not in body.decode() and "waiting" not in body.decode()


@pytest.mark.parametrize("path", [
    "/videos/9223372036854775808", "/videos/99999999999999999999.mp4", "/videos/9999999999999999999.jpg",
    "/videos/" + "9" * 5000, "/servers/99999999999999999999/", "/videos/01", "/servers/03/",
    "/videos/%D9%A1.mp4", "/videos/%EF%BC%91", "/servers/%D9%A3/",
])
async def test_ids_beyond_any_there_can_be_or_written_another_way_are_404s(world: World, path: str):
    await world.approved("a calm lake", server=3)  # job 1 of server 3: no other spelling reaches it

    status, _, body = await fetch(f"{world.url}{path}")

    assert status == 404, (path, status, body[:200])


@pytest.mark.parametrize(("query", "status"), [("page=" + "9" * 5000, 303), ("per_page=" + "9" * 5000, 200),
                                               ("page=00000000000000000001", 200)])
async def test_counts_of_any_length_are_read_without_a_500(world: World, query: str, status: int):
    await world.approved("a calm lake")

    assert (await fetch(f"{world.url}/?{query}", redirect=False))[0] == status


async def test_a_database_that_cannot_answer_is_a_503_with_retry_after_not_a_500(world: World, monkeypatch, caplog):
    from sqlalchemy.exc import OperationalError

    async def locked(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("SELECT", {}, Exception("database is locked"))

    monkeypatch.setattr(world.showcase, "approved_count", locked)
    status, headers, body = await fetch(f"{world.url}/")

    assert (status, headers["Retry-After"]) == (503, "60")
    assert body.decode() == "the database is not answering right now; try again in a minute"
    assert "GET /: the database did not answer" in caplog.text


async def test_each_server_has_its_own_page_and_the_default_front_page_shows_them_all(world: World):
    await world.approved("a lighthouse of the art club", server=SERVER)
    await world.approved("a windmill of the film club", server=OTHER)

    pages = {path: (await fetch(f"{world.url}{path}"))[2].decode() for path in ("/", f"/servers/{SERVER}/",
                                                                                  f"/servers/{OTHER}")}
    missing, _, says = await fetch(f"{world.url}/servers/999/")

    assert "lighthouse" in pages["/"] and "windmill" in pages["/"]
    assert "lighthouse" in pages[f"/servers/{SERVER}/"] and "windmill" not in pages[f"/servers/{SERVER}/"]
    assert "windmill" in pages[f"/servers/{OTHER}"] and "lighthouse" not in pages[f"/servers/{OTHER}"]
    assert f"<h1>Server {OTHER} · Video showcase</h1>" in pages[f"/servers/{OTHER}"]
    assert f'<a href="https://discord.com/channels/{OTHER}">Open Server {OTHER} in Discord</a>' in pages[
        f"/servers/{OTHER}"] and '<a href="/">← All servers</a>' in pages[f"/servers/{OTHER}"]
    assert "<h1>Video showcase</h1>" in pages["/"] and f"in Server {SERVER}</p>" in pages["/"]  # each tile's server
    assert missing == 404 and "<h1>Page not found</h1>" in says.decode() and "999" not in says.decode()


async def test_a_front_page_of_one_servers_videos_carries_its_name_and_link(tmp_path: Path):
    async with opened(tmp_path, server_name={SERVER: "Art <club>"}.get) as world:
        await world.approved("a lighthouse", server=SERVER)
        _, _, body = await fetch(f"{world.url}/")

    page = body.decode()
    assert "<title>Art &lt;club&gt; · Video showcase</title>" in page and "<h1>Art &lt;club&gt; · Video" in page
    assert f'<a href="https://discord.com/channels/{SERVER}">Open Art &lt;club&gt; in Discord</a>' in page
    assert "All servers" not in page and "in Art" not in page


async def test_the_front_page_can_list_the_servers_by_name(tmp_path: Path):
    names = {SERVER: "Art <club>", OTHER: "Film club", 5: "Quiet club"}
    async with opened(tmp_path, front_page="servers", server_name=names.get) as world:
        await world.approved("a lighthouse", server=SERVER)
        await world.approved("a windmill", server=OTHER)
        await world.approved("a second windmill", server=OTHER)
        _, _, body = await fetch(f"{world.url}/")
        quiet, _, empty = await fetch(f"{world.url}/servers/5/")

    page = body.decode()
    assert f'<a href="/servers/{SERVER}/">Art &lt;club&gt; · Video showcase</a> · 1 video' in page
    assert f'<a href="/servers/{OTHER}/">Film club · Video showcase</a> · 2 videos' in page
    assert "Quiet club" not in page and "lighthouse" not in page  # links only, servers without videos left out
    assert quiet == 404 and "Quiet club" not in empty.decode()  # the bot is in it, but it shows no video: not named


async def test_the_front_page_can_be_one_servers_page(tmp_path: Path):
    async with opened(tmp_path, front_page=str(OTHER)) as world:
        await world.approved("a lighthouse", server=SERVER)
        await world.approved("a windmill", server=OTHER)
        _, _, body = await fetch(f"{world.url}/")

    assert "windmill" in body.decode() and "lighthouse" not in body.decode()


NAMES = {SERVER: "Art club", OTHER: "Film club", 5: "Quiet club", 6: "Hidden club"}  # servers the bot is in


@pytest.mark.parametrize("path", [
    "/servers/5/",  # the bot is in it, no video was ever nominated
    "/servers/6",  # the bot is in it: one nomination waits, one was rejected, an approved one was deleted
    "/servers/999/",  # never seen
    "/servers/1234567890123456789/",  # a random snowflake-sized number
    "/servers/99999999999999999999/",  # above any id
    "/servers/art-club/", "/servers/03/",  # not an id
    "/videos/999", "/no-such-page",
])
async def test_a_path_with_nothing_to_show_is_the_sites_not_found_page_naming_nothing(tmp_path: Path, path: str):
    async with opened(tmp_path, server_name=NAMES.get) as world:
        await world.approved("a lighthouse", server=SERVER)
        for state in ("waiting", "rejected", "deleted"):
            job = await world.jobs.create_job(user_id=1, user_name="bob", channel_id=2, guild_id=6, prompt=state,
                                              params=PARAMS)
            await world.jobs.mark_running(job.id)
            await world.jobs.mark_done(job.id, seed=1, gpu_s=0.1, output_bytes=1)
            await world.showcase.nominate(job.id, 5)
            if state != "waiting":
                await world.showcase.decide(job.id, guild_id=6, approve=state == "deleted", moderator_id=9)
        await world.showcase.delete_job(job.id)
        status, headers, body = await fetch(f"{world.url}{path}")
    page = body.decode()

    assert status == 404 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert "<title>Page not found · Video showcase</title>" in page and "<h1>Page not found</h1>" in page
    assert '<a href="/">← Video showcase</a>' in page  # the way to the front page
    assert "club" not in page and "Server" not in page and "<video" not in page  # no server named, none made up
    assert not any(part in page for part in re.findall(r"[0-9a-z-]{3,}", path) if part not in ("servers", "videos"))
    assert "Cache-Control" not in headers and "default-src 'none'" in headers["Content-Security-Policy"]


async def test_a_missing_video_or_poster_is_one_line_not_a_page(world: World):
    status, headers, body = await fetch(f"{world.url}/videos/999.mp4")

    assert (status, headers["Content-Type"], body.decode()) == (404, "text/plain; charset=utf-8",
                                                                "job 999 is not in the showcase")


async def test_a_blocked_members_videos_leave_the_gallery_while_the_block_holds_and_nothing_is_deleted(
        tmp_path: Path):
    eve, bob = 7, 1
    async with opened(tmp_path, server_name=NAMES.get) as world:
        lighthouse = await world.approved("eve's lighthouse", author="Eve", server=SERVER, user=eve, votes=2)
        windmill = await world.approved("eve's windmill", author="Eve", server=OTHER, user=eve)
        await world.approved("bob's harbour", server=OTHER, user=bob)

        async def shown() -> dict[str, Any]:
            """What a visitor sees: the prompts of the front page, and each path's status."""
            _, _, front = await fetch(f"{world.url}/")
            paths = [f"/servers/{SERVER}/", f"/servers/{OTHER}/", f"/videos/{lighthouse}",
                     f"/videos/{lighthouse}.mp4", f"/videos/{lighthouse}.jpg", f"/videos/{windmill}"]
            return {"front": sorted(set(re.findall(r"(?:eve|bob)&#x27;s \w+", front.decode()))),
                    **{path: (await fetch(f"{world.url}{path}"))[0] for path in paths}}

        before = await shown()
        await world.moderation.block(eve, "spam", None, guild_id=SERVER, by=9)  # in the art club only
        await world.moderation.block(bob, "spam", utc_now() - timedelta(days=1), guild_id=GLOBAL, by=9)  # ran out
        blocked_here = await shown()
        _, _, art = await fetch(f"{world.url}/servers/{SERVER}/")
        await world.moderation.block(eve, "spam", utc_now() + timedelta(days=1), guild_id=GLOBAL, by=9)
        blocked_everywhere = await shown()
        await world.moderation.unblock(eve, guild_id=SERVER)
        await world.moderation.unblock(eve, guild_id=GLOBAL)
        lifted = await shown()
        _, _, page = await fetch(f"{world.url}/videos/{lighthouse}")

    everything = ["bob&#x27;s harbour", "eve&#x27;s lighthouse", "eve&#x27;s windmill"]
    assert before == lifted == {"front": everything, f"/servers/{SERVER}/": 200, f"/servers/{OTHER}/": 200,
                                f"/videos/{lighthouse}": 200, f"/videos/{lighthouse}.mp4": 200,
                                f"/videos/{lighthouse}.jpg": 200, f"/videos/{windmill}": 200}
    assert blocked_here == {**before, "front": ["bob&#x27;s harbour", "eve&#x27;s windmill"],
                            f"/servers/{SERVER}/": 404, f"/videos/{lighthouse}": 404,
                            f"/videos/{lighthouse}.mp4": 404, f"/videos/{lighthouse}.jpg": 404}
    assert "Art club" not in art.decode()  # its only video hidden: the server is not named either
    assert blocked_everywhere == {**blocked_here, "front": ["bob&#x27;s harbour"], f"/videos/{windmill}": 404}
    assert "⭐ 2 votes" in page.decode()  # back as it was, votes and all

def meta_tags(page: str) -> dict[str, str]:
    """The page's <meta property/name=... content=...> tags (unescaped), by property or name."""
    tags: dict[str, str] = {}

    class Reader(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found = dict(attrs)
            if tag == "meta" and (found.get("property") or found.get("name")) and found.get("content") is not None:
                tags[found.get("property") or found["name"]] = found["content"]

    Reader().feed(page)
    return tags


async def test_a_videos_page_has_the_open_graph_tags_that_unfurl_it_in_discord(tmp_path: Path):
    async with opened(tmp_path, server_name={SERVER: "Art club"}.get,
                      public_url="https://videos.example.org/") as world:
        job_id = await world.approved("a lighthouse in a storm & rain", author="Ann", votes=2)
        entry = await world.showcase.get(job_id)
        await world.showcase.set_post(entry.id, 77, 88)
        status, headers, body = await fetch(f"{world.url}/videos/{job_id}")
    page, base = body.decode(), f"https://videos.example.org/videos/{job_id}"

    assert status == 200 and headers["Cache-Control"] == "public, max-age=60"
    assert meta_tags(page) == {
        "viewport": "width=device-width, initial-scale=1", "description": "by Ann · ⭐ 2 votes",
        "og:site_name": "Art club · Video showcase",
        "og:title": "a lighthouse in a storm & rain", "og:description": "by Ann · ⭐ 2 votes",
        "og:type": "video.other", "og:url": base, "og:video": f"{base}.mp4", "og:video:secure_url": f"{base}.mp4",
        "og:video:type": "video/mp4", "og:video:width": "64", "og:video:height": "64", "og:image": f"{base}.jpg",
        "og:image:type": "image/jpeg", "og:image:alt": "Video by Ann: a lighthouse in a storm & rain",
        "og:image:width": "64", "og:image:height": "64", "twitter:card": "summary_large_image",
        "twitter:title": "a lighthouse in a storm & rain", "twitter:description": "by Ann · ⭐ 2 votes",
        "twitter:image": f"{base}.jpg"}
    assert f'<a href="/servers/{SERVER}/">← Art club · Video showcase</a>' in page
    assert f'<a href="https://discord.com/channels/{SERVER}/77/88">See the post in Discord</a>' in page
    assert f'<video src="/videos/{job_id}.mp4" poster="/videos/{job_id}.jpg" width="64" height="64" controls' in page


async def test_without_a_public_url_a_videos_links_are_built_from_the_requests_host(world: World):
    job_id = await world.approved("a windmill " + "turning " * 20)

    _, headers, body = await fetch(f"{world.url}/videos/{job_id}", Host="gallery.example.net:8443")
    tags = meta_tags(body.decode())

    assert tags["og:video"] == f"http://gallery.example.net:8443/videos/{job_id}.mp4"
    assert "og:video:secure_url" not in tags  # only for an https address
    assert len(tags["og:title"]) == 90 and tags["og:title"].endswith("…")  # a long prompt is cut for the preview
    assert headers["Cache-Control"] == "private, max-age=60"  # a proxy's cache must not serve another Host's links


async def test_python_m_bot_serves_the_gallery_when_enabled(fake_discord, tmp_path: Path):
    port = free_port()
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", gallery_enabled=1, gallery_port=port)
    bot = asyncio.create_task(run(settings))
    await fake_discord.wait_for(lambda: fake_discord.gateway.connected, timeout=WAIT, what="a connected bot")
    status, _, body = await fetch(f"http://127.0.0.1:{port}/")
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(bot, WAIT)

    assert status == 200 and b"No videos in the showcase yet." in body
    with pytest.raises(aiohttp.ClientConnectionError):
        await fetch(f"http://127.0.0.1:{port}/")  # stopped with the bot


# --- Chromium ---------------------------------------------------------------------------------------------------


def chromium_or_skip() -> str:
    """The chromium binary; a missing browser skips locally but fails under CI."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        missing("CI must test gallery playback in Chromium: install the Debian package `chromium`",
                "chromium is not installed (apt-get install chromium)")
    return path


class DevTools:
    """A minimal Chrome DevTools Protocol client over one browser websocket (flattened target sessions)."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self.socket = socket
        self.next_id = 0
        self.replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.socket:
            data = json.loads(message.data)
            future = self.replies.pop(data.get("id", -1), None)
            if future is not None:
                future.set_result(data)
            else:
                self.events.put_nowait(data)

    async def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        future = self.replies[self.next_id] = asyncio.get_running_loop().create_future()
        await self.socket.send_json({"id": self.next_id, "method": method, "params": params,
                                     **({"sessionId": session} if session else {})})
        reply = await asyncio.wait_for(future, WAIT)
        assert "error" not in reply, f"{method}: {reply['error']}"
        return reply["result"]

    async def event(self, method: str) -> dict[str, Any]:
        while (event := await asyncio.wait_for(self.events.get(), WAIT))["method"] != method:
            pass
        return event["params"]


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[DevTools]:
    """Headless Chromium with remote debugging on a free port; ended (by its pid) after the test."""
    process = await asyncio.create_subprocess_exec(
        chromium_or_skip(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium'}", "--remote-debugging-port=0",
        "about:blank", stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        endpoint = await asyncio.wait_for(_devtools_url(process), WAIT * 3)
        async with aiohttp.ClientSession() as session, session.ws_connect(endpoint, max_msg_size=0) as socket:
            devtools = DevTools(socket)
            yield devtools
            devtools.reader.cancel()
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()


async def _devtools_url(process: asyncio.subprocess.Process) -> str:
    """Chromium prints "DevTools listening on ws://..." on stderr once it accepts connections."""
    assert process.stderr is not None
    while line := (await process.stderr.readline()).decode():
        if line.startswith("DevTools listening on "):
            return line.split(" on ", 1)[1].strip()
    raise AssertionError(f"chromium exited ({await process.wait()}) without opening DevTools")


WIDTHS = {"desktop": 1280, "phone": 390}
PLAYING = """(async () => {
  const video = document.querySelector('video');
  const failed = new Promise((_, reject) => video.addEventListener('error',
      () => reject(new Error('media error ' + video.error.code)), {once: true}));
  await Promise.race([failed, new Promise(resolve => {
    const check = () => video.currentTime > 0 && video.readyState >= 2 && !video.paused && resolve();
    video.addEventListener('timeupdate', check); check();
  })]);
  return {currentTime: video.currentTime, readyState: video.readyState, duration: video.duration,
          width: video.videoWidth, muted: video.muted, controls: video.controls};
})()"""  # no play(): the page starts a tile in view by itself
POSTERS_SHOWN = """(async () => {
  await Promise.all([...document.querySelectorAll('video')].filter(video => video.poster).map(video => {
    const image = new Image(); image.src = video.poster; return image.decode();
  }));
  await new Promise(resolve => requestAnimationFrame(() => requestAnimationFrame(resolve)));
  const box = element => { const r = element.getBoundingClientRect();
    return {left: r.left, top: r.top + scrollY, right: r.right, bottom: r.bottom + scrollY}; };
  return {
    cards: [...document.querySelectorAll('article')].map(card => ({
      box: box(card), tile: box(card.querySelector('.tile')), meta: box(card.querySelector('.meta')),
      texts: [...card.querySelectorAll('a, p, span, time')].filter(e => e.textContent.trim())
                 .map(e => ({text: e.textContent.slice(0, 40), box: box(e),
                             spills: e.scrollWidth > e.clientWidth + 1 && e.clientWidth > 0 &&
                                     getComputedStyle(e).overflowX === 'visible'})),
      cut: [...card.querySelectorAll('.who')].map(e => e.scrollWidth > e.clientWidth &&
                                                       getComputedStyle(e).textOverflow === 'ellipsis'),
      paused: card.querySelector('video').paused, currentTime: card.querySelector('video').currentTime,
    })),
    pageWidth: document.documentElement.scrollWidth, viewport: innerWidth,
  };
})()"""


async def opened_page(browser: DevTools, url: str, width: int, *, calm: bool = False) -> str:
    """A new tab `width` CSS pixels wide (a phone's below 600) showing `url`; `calm`: prefers reduced motion."""
    target = await browser.send("Target.createTarget", url="about:blank")
    session = (await browser.send("Target.attachToTarget", targetId=target["targetId"], flatten=True))["sessionId"]
    await browser.send("Page.enable", session)
    await browser.send("Emulation.setDeviceMetricsOverride", session, width=width, height=900, deviceScaleFactor=1,
                       mobile=width < 600)
    if calm:
        await browser.send("Emulation.setEmulatedMedia", session,
                           features=[{"name": "prefers-reduced-motion", "value": "reduce"}])
    await browser.send("Page.navigate", session, url=url)
    await browser.event("Page.loadEventFired")
    return session


async def evaluate(browser: DevTools, session: str, expression: str) -> Any:
    """The value of a JavaScript expression in the tab (awaited); an exception fails the test with its text."""
    reply = await browser.send("Runtime.evaluate", session, expression=expression, awaitPromise=True,
                               returnByValue=True)
    assert "exceptionDetails" not in reply, reply["exceptionDetails"]
    return reply["result"].get("value")


def inside(inner: dict[str, float], outer: dict[str, float]) -> bool:
    return all((inner[side] - outer[side]) * sign <= 0.5 for side, sign in
               (("left", -1), ("top", -1), ("right", 1), ("bottom", 1)))


@pytest.mark.parametrize("device", WIDTHS)
async def test_chromium_shows_each_tiles_poster_before_it_plays_and_keeps_text_inside_its_card(
        world: World, browser: DevTools, tmp_path: Path, device: str):
    await world.approved("a short prompt of a wide video", author="Ann", width=112)
    await world.approved("a-very-long-unbroken-prompt-" * 12 + " and then many more words " * 8,
                         author="Bartholomew-Maximilian-" * 6, votes=12)
    await world.approved("a third video", author="<b>Eve</b>", votes=1)
    session = await opened_page(browser, f"{world.url}/", WIDTHS[device], calm=True)  # calm: nothing plays

    layout = await evaluate(browser, session, POSTERS_SHOWN)
    first = layout["cards"][0]["tile"]
    band = {"x": first["left"], "y": first["top"], "width": first["right"] - first["left"],
            "height": (first["bottom"] - first["top"]) * 0.35, "scale": 1}  # above the controls' play button
    shot = await browser.send("Page.captureScreenshot", session, format="png", clip=band)
    path = tmp_path / f"gallery-{device}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    with Image.open(path) as image:
        mean = ImageStat.Stat(image.convert("RGB")).mean

    cards = layout["cards"]
    assert all(card["paused"] and card["currentTime"] == 0 for card in cards)  # before any play
    assert all(abs(got - want) < 24 for got, want in zip(mean, (136, 128, 128), strict=True)), mean  # the poster
    for card in cards:
        outside = [text for text in card["texts"] if not inside(text["box"], card["box"]) or text["spills"]]
        assert not outside, f"text outside its card at {WIDTHS[device]} px: {outside}"
        tile = card["tile"]
        assert abs((tile["right"] - tile["left"]) - (tile["bottom"] - tile["top"])) <= 1  # square tiles
    shapes = {(round(card["box"]["bottom"] - card["box"]["top"]), round(card["meta"]["top"] - card["box"]["top"]))
              for card in cards}
    assert len(shapes) == 1, shapes  # every card the same, its credit in the same place: none stretched to another
    assert cards[1]["cut"] == [True]  # the long name ends in an ellipsis
    assert layout["pageWidth"] <= layout["viewport"]  # nothing scrolls sideways
    if device == "desktop":
        assert len({round(card["box"]["top"]) for card in cards}) == 1  # one row of three
    print(f"gallery screenshot ({device}): {path}")


@pytest.mark.parametrize("device", WIDTHS)
async def test_chromium_plays_a_tile_in_view_muted_without_a_click(world: World, browser: DevTools, device: str):
    await world.approved("a colour sweep <i>for the browser</i>", author="bob")
    session = await opened_page(browser, f"{world.url}/", WIDTHS[device])

    state = await evaluate(browser, session, PLAYING)

    print(f"chromium playback ({device}): {state}")
    assert state["currentTime"] > 0 and state["readyState"] >= 2 and state["width"] == 64
    assert state["duration"] == pytest.approx(2.0, abs=0.2)
    assert state["muted"] and not state["controls"]  # the page's script took the controls off the tile


OPEN_GRAPH = """(async () => {
  const tags = Object.fromEntries([...document.querySelectorAll('meta[property], meta[name^="twitter:"]')]
      .map(meta => [meta.getAttribute('property') || meta.name, meta.content]));
  const poster = new Image(); poster.src = document.querySelector('video').poster; await poster.decode();
  return {tags, poster: poster.naturalWidth, back: document.querySelector('header a').getAttribute('href')};
})()"""


async def test_chromium_reads_a_videos_open_graph_tags_and_follows_past_the_end_and_capped_pages(
        tmp_path: Path, browser: DevTools):
    async with opened(tmp_path, public_url="https://videos.example.org") as world:
        job_id = await world.approved("a lighthouse in a storm", author="Ann")
        for n in range(2):
            await world.approved(f"video {n}", kept=False)
        session = await opened_page(browser, f"{world.url}/videos/{job_id}", WIDTHS["phone"])
        shared = await evaluate(browser, session, OPEN_GRAPH)
        await browser.send("Page.navigate", session, url=f"{world.url}/?page=9&per_page=100")
        await browser.event("Page.loadEventFired")
        landed = await evaluate(browser, session, "({url: location.href, "
                                                  "cards: document.querySelectorAll('article').length})")

    base = f"https://videos.example.org/videos/{job_id}"
    tags = shared["tags"]
    assert (tags["og:type"], tags["og:title"], tags["og:video"], tags["og:video:type"]) == (
        "video.other", "a lighthouse in a storm", f"{base}.mp4", "video/mp4")
    assert (tags["og:image"], tags["twitter:card"], tags["og:video:width"]) == (
        f"{base}.jpg", "summary_large_image", "64")
    assert shared["poster"] == 64 and shared["back"] == f"/servers/{SERVER}/"
    assert landed == {"url": f"{world.url}/?page=1&per_page=50", "cards": 3}
