"""The web gallery: approved showcase videos with prompt, author, ⭐ votes and date, paginated, served by aiohttp.

Which videos it shows is storage's (ShowcaseRepository: approved, undeleted, and their author not blocked in the
video's server or everywhere, while the block holds); what it has nothing at is its not-found page (a 404).

Routes:
- `GET /servers/<server id>/?page=N&per_page=M`: a server's approved videos, newest approval first, under its name
  with a link to the server in Discord. `per_page` above MAX_PER_PAGE shows MAX_PER_PAGE; a page past the last
  redirects (303) to the last; a value that is not a whole number of 1 or more, or one given twice, gets one 400
  line naming it. A server with no video to show is the not-found page, whether the bot is in it or not: its name is
  shown only with its videos.
- `GET /`: what the operator chose (GALLERY_FRONT_PAGE): every server's videos together (`all`; under the server's
  name when only one server has any), a list of the servers (`servers`), or one server's page (its id).
- `GET /videos/<job id>`: one video's page, with the Open Graph tags that unfurl a shared link into the video
  (absolute URLs from GALLERY_PUBLIC_URL, else the request's host: then the page is cached by the browser alone,
  and a Host that is no host name is a 400 line naming it) and the way back to its server's gallery.
- `GET /videos/<job id>.mp4` and `.jpg`: a kept MP4 of an approved entry (with range requests, so browsers seek:
  one byte range; several, another unit than bytes, or an If-Range that is not the file as it is, get the whole file;
  a range that is none or asks for no byte is a 416 line naming it and the file's size) and its poster frame (made
  now for a video kept before posters were; a 404 if it cannot be: a tile then shows its background until it plays,
  and the page still works).
- Any other path, and a server or video with nothing to show: the not-found page (404), which names nothing of the
  path; a video's or poster's 404 is one line of text (a <video> or <img> shows no page).

Pages may be cached briefly (PAGE_CACHE: an approval, a 🗑 Delete or a block shows within a minute), videos and
posters for a day (MEDIA_CACHE: a job's video never changes while it is shown, and a deleted one leaves caches within
a day).
The HTML (bot.web.pages) escapes all user text and runs no script but its own.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Callable
from pathlib import Path

from aiohttp import hdrs, web
from aiohttp.abc import AbstractStreamWriter

from bot.characters import clip
from bot.media import MediaStore
from bot.web.pages import CSP, Pager, Server, listing, not_found_page, servers_page, video_page
from bot.web.site import NOSNIFF, Handler, LocalSite
from storage import MAX_JOB_ID, MAX_SNOWFLAKE, ShowcaseRecord, ShowcaseRepository

log = logging.getLogger(__name__)

DEFAULT_PER_PAGE = 12
MAX_PER_PAGE = 50  # per_page above this shows this many
PAGE_CACHE = "public, max-age=60"
PRIVATE_PAGE_CACHE = "private, max-age=60"  # a video's page whose links come from the request (no GALLERY_PUBLIC_URL)
MEDIA_CACHE = "public, max-age=86400, immutable"
SECURITY_HEADERS = {**NOSNIFF, "Content-Security-Policy": CSP, "Referrer-Policy": "no-referrer"}  # every response

HOST = re.compile(r"(?:[A-Za-z0-9._~-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?", re.ASCII)  # a Host: name or [IP], port
ID = "[1-9][0-9]{0,18}"  # a path's id: ASCII digits, no leading zero, at most 19 of them
BYTE_RANGE = re.compile(r"\s*([0-9]*)\s*-\s*([0-9]*)\s*", re.ASCII)  # one range-spec of RFC 9110 §14.1.1
ServerName = Callable[[int], str | None]  # a server's name, None when the bot is not in it


def _no_names(guild_id: int) -> str | None:
    return None


class Gallery(LocalSite):
    """The gallery's aiohttp application, and a site to run it on."""

    def __init__(self, repo: ShowcaseRepository, media: MediaStore, *, title: str = "Video showcase",
                 front_page: str = "all", server_name: ServerName = _no_names, public_url: str | None = None) -> None:
        self.repo = repo
        self.media = media
        self.title = title
        self.front_page = front_page  # GALLERY_FRONT_PAGE: all, servers, or a server id
        self.server_name = server_name
        self.public_url = public_url.rstrip("/") if public_url else None  # GALLERY_PUBLIC_URL
        self._told_missing: set[int] = set()  # jobs whose missing file was logged: once each, whoever asks again
        super().__init__(SECURITY_HEADERS)
        self.app.middlewares.append(self._not_found)
        self.app.add_routes([web.get("/", self.index), web.get(f"/servers/{{guild:{ID}}}", self.server),
                             web.get(f"/servers/{{guild:{ID}}}/", self.server),
                             web.get(f"/videos/{{job:{ID}}}", self.video_page),
                             web.get(f"/videos/{{job:{ID}}}.mp4", self.video),
                             web.get(f"/videos/{{job:{ID}}}.jpg", self.poster)])

    async def index(self, request: web.Request) -> web.Response:
        """The front page the operator chose."""
        if self.front_page == "servers":
            rows = await self.repo.approved_servers()
            return _html(servers_page(self.title, [(self._server(guild), count) for guild, count in rows]))
        if self.front_page.isdigit():
            return await self._videos(request, int(self.front_page))
        return await self._videos(request, None)

    async def server(self, request: web.Request) -> web.Response:
        """One server's page; the not-found page for a server with no video to show (one the bot is in too: its
        name is not told to whoever guesses its id)."""
        guild_id = _id(request, "guild", "server")
        shown = await self.repo.approved_count(guild_id=guild_id)
        if not shown:
            raise web.HTTPNotFound(text=f"server {guild_id} has no video in the showcase")
        return await self._videos(request, guild_id, shown)

    async def _videos(self, request: web.Request, guild_id: int | None, shown: int | None = None) -> web.Response:
        """One page of a server's approved videos (None: every server's; `shown`: how many there are, when the
        caller counted them); past the last page, a redirect to it."""
        per_page = min(_count(request, "per_page", DEFAULT_PER_PAGE), MAX_PER_PAGE)
        page = _count(request, "page", 1)
        if shown is None:
            shown = await self.repo.approved_count(guild_id=guild_id)
        pages = max(1, math.ceil(shown / per_page))
        if page > pages:
            capped = {"per_page": str(per_page)} if "per_page" in request.query else {}
            raise web.HTTPSeeOther(request.rel_url.update_query(page=str(pages), **capped),
                                   headers={"Cache-Control": PAGE_CACHE})
        entries = await self.repo.approved_page(page, per_page, guild_id=guild_id)
        server, servers = await self._whose(guild_id, entries)
        title = self.title if server is None else f"{server.title} · {self.title}"
        front = "/" if request.path != "/" and not self.front_page.isdigit() else None  # / lists every server
        gone = [entry.job_id for entry in entries if not self.media.has(entry.job_id)]  # removed by hand
        return _html(listing(title, entries, Pager(page, pages, per_page), server=server, front=front,
                             servers=servers, gone=gone))

    async def _whose(self, guild_id: int | None, entries: list[ShowcaseRecord]
                     ) -> tuple[Server | None, dict[int, Server] | None]:
        """The server a page is of, or (every server's page) the server of each entry; every server's page is the
        one server's when only one has approved videos."""
        if guild_id is not None:
            return self._server(guild_id), None
        servers = [guild for guild, _ in await self.repo.approved_servers()]
        if len(servers) == 1:
            return self._server(servers[0]), None
        return None, {entry.guild_id: self._server(entry.guild_id) for entry in entries}

    async def video_page(self, request: web.Request) -> web.Response:
        """One approved video's page, with its link preview's tags."""
        entry = await self._shown(_id(request, "job", "job"))
        kept = self.media.has(entry.job_id)  # False: its file was removed by hand; the page says so
        poster = kept and await self.media.poster(entry.job_id) is not None
        base = self.public_url or _origin(request)
        page = _html(video_page(entry, self._server(entry.guild_id), self.title, base=base, poster=poster,
                                kept=kept))
        if self.public_url is None:  # links from the request's Host: a shared cache must not hand one to everyone
            page.headers["Cache-Control"] = PRIVATE_PAGE_CACHE
        return page

    async def video(self, request: web.Request) -> web.StreamResponse:
        """The MP4 of an approved, undeleted entry (range requests allowed)."""
        job_id = (await self._shown(_id(request, "job", "job"))).job_id
        path = self.media.path(job_id)
        if not path.is_file():
            if job_id not in self._told_missing:  # a client asking again and again must not fill the log
                self._told_missing.add(job_id)
                log.warning("showcase job %d is approved but %s is missing", job_id, path)
            raise web.HTTPNotFound(text=f"the video of job {job_id} is not kept any more")
        return await _file(request, path, "video/mp4", "video")

    async def poster(self, request: web.Request) -> web.StreamResponse:
        """The poster frame of an approved, undeleted entry's video, made now if it was kept without one."""
        job_id = (await self._shown(_id(request, "job", "job"))).job_id
        path = await self.media.poster(job_id)
        if path is None:
            raise web.HTTPNotFound(text=f"the video of job {job_id} has no poster frame")
        return await _file(request, path, "image/jpeg", "poster")

    async def _shown(self, job_id: int) -> ShowcaseRecord:
        """The entry of a job the gallery shows (ShowcaseRepository.shown), or a 404."""
        entry = await self.repo.shown(job_id)
        if entry is None:
            raise web.HTTPNotFound(text=f"job {job_id} is not in the showcase")
        return entry

    @web.middleware
    async def _not_found(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """A 404 (a path of no route, a server or video with nothing to show) as the site's not-found page; a
        video's or poster's as its one line. What was missing goes to the debug log, not into the page."""
        try:
            return await handler(request)
        except web.HTTPNotFound as missing:
            if request.match_info.route.handler in (self.video, self.poster):
                raise
            log.debug("%s %s: not found (%s)", request.method, request.path, missing.text)
            return web.Response(status=404, text=not_found_page(self.title), content_type="text/html",
                                charset="utf-8")

    def _server(self, guild_id: int) -> Server:
        """A server's name and its gallery page ("/" when it is the front page)."""
        page = "/" if self.front_page == str(guild_id) else f"/servers/{guild_id}/"
        return Server(guild_id, self.server_name(guild_id), page)


def _id(request: web.Request, name: str, what: str) -> int:
    """A server or job id of the path (ASCII digits without a leading zero: one URL a video), or a 404 for one above
    any id there can be (a job's: MAX_JOB_ID, which PostgreSQL would answer with an error, not with no row)."""
    value = int(request.match_info[name])
    if value > (MAX_JOB_ID if name == "job" else MAX_SNOWFLAKE):
        raise web.HTTPNotFound(text=f"{what} {value} is not in the showcase")
    return value


def _origin(request: web.Request) -> str:
    """The request's scheme and host, for a page's absolute links when there is no GALLERY_PUBLIC_URL, or a 400 naming
    a Host that is no host name (bytes that are not UTF-8 there failed the page with a 500)."""
    host = request.host
    if not HOST.fullmatch(host):
        raise web.HTTPBadRequest(text=f"Host {clip(host, 80)!r} is no host name such as videos.example.org or "
                                      "127.0.0.1:8080")
    return f"{request.scheme}://{host}"


def _count(request: web.Request, name: str, default: int) -> int:
    """A whole-number query parameter of 1 or more (a huge one read as 10¹⁸: past any page), or a 400 that names
    the value (or the values, when it is given more than once: which one is meant cannot be told)."""
    given = request.query.getall(name, [])
    if len(given) > 1:
        values = ", ".join(repr(clip(value, 40)) for value in given[:5])
        raise web.HTTPBadRequest(text=f"{name} must be given once, got it {len(given)} times ({values})")
    raw = given[0] if given else None
    if raw is None:
        return default
    digits = raw.lstrip("0")
    if not (raw.isascii() and raw.isdigit()) or not digits:
        most = f" (pages show at most {MAX_PER_PAGE})" if name == "per_page" else ""
        raise web.HTTPBadRequest(text=f"{name} must be a whole number of 1 or more{most}, got {clip(raw, 40)!r}")
    return int(digits) if len(digits) <= 18 else 10**18


async def _file(request: web.Request, path: Path, content_type: str, what: str) -> web.StreamResponse:
    """A kept file, whole or the one byte range asked (`_ranged`); a 404 line when it went meanwhile."""
    try:
        kept = path.stat()
    except FileNotFoundError:
        raise web.HTTPNotFound(text=f"the {what} {path.name} is not kept any more") from None
    return _AskedFile(path, _ranged(request, kept, what),
                      headers={"Content-Type": content_type, "Cache-Control": MEDIA_CACHE})


class _AskedFile(web.FileResponse):
    """A FileResponse that answers `asked` (the request with its Range as `_ranged` wrote it) when aiohttp sends it.
    Preparing it in the handler instead had aiohttp prepare it a second time: FileResponse sends the file again
    whatever was sent, which failed with an "Unhandled exception" traceback and closed the connection after every
    video and poster (a browser seeking an MP4 opened a new one for each range)."""

    def __init__(self, path: Path, asked: web.Request, *, headers: dict[str, str]) -> None:
        super().__init__(path, headers=headers)
        self._asked = asked

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if self.prepared:
            return None
        return await super().prepare(self._asked)


def _ranged(request: web.Request, kept: os.stat_result, what: str) -> web.Request:
    """The request to answer for the `kept` file: with its one byte range written as aiohttp reads it; without its
    Range (the whole file, as RFC 9110 §14.2 allows) when it names another unit than bytes or several ranges, which
    aiohttp would refuse as unsatisfiable, or when its If-Range is not the file as it is now (§13.1.5); a 416 naming the
    range and the file's size when it is no byte range or asks no byte of the file. If-Range is decided here, not by
    aiohttp, which reads no entity-tag in it (a stale one got a part of the new file) and left its Range unread."""
    asked = request.headers.get(hdrs.RANGE)
    if asked is None:
        return request
    headers, size = request.headers.copy(), kept.st_size
    if hdrs.IF_RANGE in headers:
        headers.popall(hdrs.IF_RANGE)
        if not _unchanged(request, kept):
            log.debug("%s %s: If-Range %r is not the file's: the whole file", request.method, request.path,
                      clip(request.headers[hdrs.IF_RANGE], 80))
            headers.popall(hdrs.RANGE)
            return request.clone(headers=headers)
    unit, _, ranges = asked.partition("=")
    if unit.strip().lower() != "bytes" or "," in ranges:
        log.debug("%s %s: Range %r answered with the whole file", request.method, request.path, clip(asked, 80))
        headers.popall(hdrs.RANGE)
        return request.clone(headers=headers)
    spec = BYTE_RANGE.fullmatch(ranges)
    first, last = (spec[1], spec[2]) if spec else ("", "")
    if not spec or not (first or last) or (first and last and _offset(first) > _offset(last)):
        why = f"is no byte range such as bytes=0-1023, bytes=1024- or bytes=-1024 (the {what} has {size} bytes)"
    elif (first and _offset(first) >= size) or (not first and _offset(last) == 0):
        why = f"asks for none of the {what}'s {size} bytes (0 to {size - 1})"
    else:
        start = str(_offset(first)) if first else ""
        end = str(min(_offset(last), size - 1 if first else size)) if last else ""
        headers[hdrs.RANGE] = f"bytes={start}-{end}"
        return request.clone(headers=headers)
    raise web.HTTPRequestRangeNotSatisfiable(text=f"Range {clip(asked, 80)!r} {why}",
                                             headers={hdrs.CONTENT_RANGE: f"bytes */{size}"})


def _unchanged(request: web.Request, kept: os.stat_result) -> bool:
    """Whether the request's If-Range names the `kept` file as it is: its ETag (a strong one, as aiohttp's FileResponse
    writes it) or a date no earlier than its Last-Modified; anything else, an unreadable value too, does not."""
    validator = request.headers[hdrs.IF_RANGE].strip()
    if validator.startswith(('"', "W/")):
        return validator == f'"{kept.st_mtime_ns:x}-{kept.st_size:x}"'
    since = request.if_range
    return since is not None and kept.st_mtime <= since.timestamp()


def _offset(digits: str) -> int:
    """A byte offset of a Range header (a huge one read as 10²⁰: past the end of any file, and no int() of
    thousands of digits)."""
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= 20 else 10**20


def _html(body: str) -> web.Response:
    return web.Response(text=body, content_type="text/html", charset="utf-8", headers={"Cache-Control": PAGE_CACHE})
