"""The web gallery: approved showcase videos with prompt, author, ⭐ votes and date, paginated, served by aiohttp.

Each server's approved videos are listed under its own path, `GET /servers/<server id>/?page=N&per_page=M`, newest
approval first; the front page `GET /` is what the operator chose (GALLERY_FRONT_PAGE): every server's videos
together (`all`), a list of the servers with a link to each (`servers`), or one server's page (its id). Values out
of range get a 400 that names the range. `GET /videos/<job id>.mp4` serves a kept MP4 of an approved entry from the
media directory with HTTP range support (aiohttp's FileResponse), so browsers can seek and play it. All user text is
HTML-escaped and the page sends a Content-Security-Policy without scripts, so a prompt can never run in a visitor's
browser.
"""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Callable

from aiohttp import web

from bot.media import MediaStore
from bot.web.site import LocalSite
from storage.records import ShowcaseRecord, ShowcaseState
from storage.showcase import ShowcaseRepository

log = logging.getLogger(__name__)

DEFAULT_PER_PAGE = 12
MAX_PER_PAGE = 50
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; media-src 'self'; style-src 'unsafe-inline'; "
                               "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
STYLE = """body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;background:#111;
color:#eee}main{display:grid;grid-template-columns:repeat(auto-fill,minmax(16rem,1fr));gap:1.5rem}
article{background:#1c1c1c;border-radius:.5rem;padding:.75rem}video{width:100%;border-radius:.25rem;
background:#000}.prompt{margin:.5rem 0;overflow-wrap:anywhere}.meta{color:#aaa;font-size:.85rem}
nav{margin:2rem 0;display:flex;gap:1rem}a{color:#8cf}"""


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    """A whole-number query parameter within low..high, or a 400 naming the range."""
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise web.HTTPBadRequest(text=f"{name} must be a whole number from {low} to {high}, got {raw!r}")
    return value


ServerName = Callable[[int], str | None]  # a server's name, None when the bot is not in it


def _no_names(guild_id: int) -> str | None:
    return None


class Gallery(LocalSite):
    """The gallery's aiohttp application, and a site to run it on."""

    def __init__(self, repo: ShowcaseRepository, media: MediaStore, *, title: str = "Video showcase",
                 front_page: str = "all", server_name: ServerName = _no_names) -> None:
        self.repo = repo
        self.media = media
        self.title = title
        self.front_page = front_page  # GALLERY_FRONT_PAGE: all, servers, or a server id
        self.server_name = server_name
        super().__init__()
        self.app.add_routes([web.get("/", self.index), web.get(r"/servers/{guild:\d+}", self.server),
                             web.get(r"/servers/{guild:\d+}/", self.server),
                             web.get(r"/videos/{job:\d+}.mp4", self.video)])

    async def index(self, request: web.Request) -> web.Response:
        """The front page the operator chose."""
        if self.front_page == "servers":
            return _html(await self._servers_page())
        if self.front_page.isdigit():
            return await self._videos(request, int(self.front_page))
        return await self._videos(request, None)

    async def server(self, request: web.Request) -> web.Response:
        """One server's page; 404 for a server with no approved videos that the bot is not in."""
        guild_id = int(request.match_info["guild"])
        if self.server_name(guild_id) is None and not await self.repo.approved_count(guild_id=guild_id):
            raise web.HTTPNotFound(text=f"server {guild_id} has no showcase here")
        return await self._videos(request, guild_id)

    async def _videos(self, request: web.Request, guild_id: int | None) -> web.Response:
        """One page of a server's approved videos (None: every server's)."""
        per_page = _int_param(request, "per_page", DEFAULT_PER_PAGE, 1, MAX_PER_PAGE)
        pages = max(1, math.ceil(await self.repo.approved_count(guild_id=guild_id) / per_page))
        page = _int_param(request, "page", 1, 1, pages)
        entries = await self.repo.approved_page(page, per_page, guild_id=guild_id)
        return _html(self._page(entries, page, pages, per_page, self._title(guild_id)))

    def _title(self, guild_id: int | None) -> str:
        """The gallery's title, with the server's name on a server's page."""
        if guild_id is None:
            return self.title
        return f"{self.server_name(guild_id) or f'Server {guild_id}'} · {self.title}"

    async def _servers_page(self) -> str:
        """The servers with approved videos, each linking to its page."""
        rows = await self.repo.approved_servers()
        items = "".join(f'<li><a href="/servers/{guild_id}/">{html.escape(self._title(guild_id))}</a> · '
                        f"{count} video{'' if count == 1 else 's'}</li>" for guild_id, count in rows)
        body = f"<ul>{items}</ul>" if rows else "<p>No videos in the showcase yet.</p>"
        return _document(self.title, f"<h1>{html.escape(self.title)}</h1>{body}")

    async def video(self, request: web.Request) -> web.StreamResponse:
        """The MP4 of an approved, undeleted entry (range requests allowed)."""
        job_id = int(request.match_info["job"])
        entry = await self.repo.get(job_id) if job_id > 0 else None
        if entry is None or entry.state != ShowcaseState.APPROVED or entry.job_deleted:
            raise web.HTTPNotFound(text=f"job {job_id} is not in the showcase")
        path = self.media.path(job_id)
        if not path.is_file():
            log.warning("showcase job %d is approved but %s is missing", job_id, path)
            raise web.HTTPNotFound(text=f"the video of job {job_id} is not kept any more")
        return web.FileResponse(path, headers={"Content-Type": "video/mp4", **SECURITY_HEADERS})

    def _page(self, entries: list[ShowcaseRecord], page: int, pages: int, per_page: int, title: str) -> str:
        """The HTML of one page; every piece of user text is escaped."""
        cards = "\n".join(_card(entry) for entry in entries) or "<p>No videos in the showcase yet.</p>"
        links = []
        if page > 1:
            links.append(f'<a rel="prev" href="?page={page - 1}&amp;per_page={per_page}">← Newer</a>')
        links.append(f"<span>Page {page} of {pages}</span>")
        if page < pages:
            links.append(f'<a rel="next" href="?page={page + 1}&amp;per_page={per_page}">Older →</a>')
        return _document(title, f"<h1>{html.escape(title)}</h1><main>\n{cards}\n</main><nav>{''.join(links)}</nav>")


def _document(title: str, body: str) -> str:
    """A whole HTML page around `body` (already escaped)."""
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head>'
            f"<body>{body}</body></html>\n")


def _html(body: str) -> web.Response:
    return web.Response(text=body, content_type="text/html", charset="utf-8", headers=SECURITY_HEADERS)


def _card(entry: ShowcaseRecord) -> str:
    """One video with its prompt, author, votes and approval date."""
    date = entry.decided_at.date().isoformat() if entry.decided_at else ""
    votes = f"{entry.votes} vote{'' if entry.votes == 1 else 's'}"
    return (f'<article id="job-{entry.job_id}"><video src="/videos/{entry.job_id}.mp4" controls muted loop playsinline '
            f'preload="metadata"></video><p class="prompt">{html.escape(entry.prompt)}</p>'
            f'<p class="meta">by {html.escape(entry.author_name)} · ⭐ {votes} · <time datetime="{date}">{date}</time>'
            "</p></article>")
