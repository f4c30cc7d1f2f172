"""The gallery's HTML: a page of video tiles, a page per video whose Open Graph tags unfurl a shared link into the
video (Discord, Slack, Mastodon...), the list of servers, and the page of a path with nothing to show.

Every piece of user text (prompts, author and server names) is escaped here, without the control and bidi control
characters the policy gate refuses in a prompt (names pass no gate: an override would show what follows reversed). The
pages run one script, AUTOPLAY, inline and allowed by its hash in the Content-Security-Policy (CSP), so no text in a
page can ever run: it plays a tile muted and looping while it is in view or under the pointer, and a click opens the
video's page. Without it (JavaScript off, or a visitor who prefers reduced motion) every tile keeps the browser's own
controls.
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Collection
from dataclasses import dataclass

from bot.characters import clip, counted, one_line
from storage import ShowcaseRecord

DISCORD_SERVER = "https://discord.com/channels/{guild}"  # opens the server in Discord, for its members
DISCORD_POST = "https://discord.com/channels/{guild}/{channel}/{message}"
TITLE_CHARS = 90  # a prompt longer than this is cut (with …) in page titles and link previews
EMPTY = ("<section class=\"empty\"><h2>No videos in the showcase yet.</h2><p>Members put a public video up with "
         "the ⭐ Showcase button under it in Discord; the server's moderators review the nominations "
         "(<code>/videomod showcase pending</code>), and every video they approve appears here, newest first.</p>"
         "</section>")
NOT_FOUND = ("<section class=\"empty\"><h2>Nothing to show here.</h2><p>This link leads to no video or server in the "
             "showcase: it may be mistyped, or what it showed was taken down.</p></section>")
STYLE = """:root{color-scheme:dark}*{box-sizing:border-box}body{font-family:system-ui,sans-serif;line-height:1.35;
margin:0 auto;max-width:76rem;padding:1rem;background:#111;color:#eee}a{color:#8cf}header{margin:.5rem 0 1.5rem}
h1{font-size:1.6rem;margin:0 0 .3rem;overflow-wrap:anywhere}.links{margin:0;color:#aaa;display:flex;flex-wrap:wrap;
gap:.25rem 1rem;overflow-wrap:anywhere}.grid{display:grid;gap:1.25rem;align-items:start;
grid-template-columns:repeat(auto-fill,minmax(min(15rem,100%),1fr))}.card{background:#1c1c1c;border-radius:.5rem;
padding:.6rem;min-width:0;overflow:hidden}.tile{aspect-ratio:1;border-radius:.3rem;overflow:hidden;background:#000}
.tile video{display:block;width:100%;height:100%;object-fit:cover}.prompt{display:-webkit-box;-webkit-line-clamp:2;
-webkit-box-orient:vertical;overflow:hidden;height:2.7em;margin:.5rem 0 .3rem;overflow-wrap:anywhere;color:#eee;
text-decoration:none}.prompt:hover,.prompt:focus{text-decoration:underline}.meta{display:flex;gap:.35em;margin:0;
color:#aaa;font-size:.85rem;white-space:nowrap}.meta>*{flex:none}.meta .who{flex:0 1 auto;min-width:0;
overflow:hidden;text-overflow:ellipsis}.server{margin:.2rem 0 0;color:#888;font-size:.8rem;white-space:nowrap;
overflow:hidden;text-overflow:ellipsis}nav{margin:2rem 0;display:flex;flex-wrap:wrap;gap:1rem}
.empty{max-width:40rem}.one{margin:0}.one video{display:block;width:100%;height:auto;max-height:75vh;
background:#000;border-radius:.3rem}.full{font-size:1.15rem;overflow-wrap:anywhere;margin:.75rem 0 .3rem}
.one .meta{white-space:normal;flex-wrap:wrap}.one .who{overflow-wrap:anywhere}.gone{display:flex;align-items:center;
justify-content:center;text-align:center;padding:1rem;color:#aaa}.one .gone{min-height:12rem;background:#000;
border-radius:.3rem}"""
GONE = "This video is no longer kept."  # an approved entry whose file was removed from MEDIA_DIR by hand
AUTOPLAY = """(() => {
  if (matchMedia("(prefers-reduced-motion: reduce)").matches || !("IntersectionObserver" in window)) return;
  const play = (video) => video.play().catch(() => {});
  const seen = new IntersectionObserver((changes) => {
    for (const change of changes) change.isIntersecting ? play(change.target) : change.target.pause();
  }, {threshold: 0.5});
  for (const video of document.querySelectorAll("video[data-page]")) {
    video.muted = true;
    video.controls = false;
    video.addEventListener("mouseenter", () => play(video));
    video.addEventListener("click", () => { location.href = video.dataset.page; });
    seen.observe(video);
  }
})();"""
CSP = ("default-src 'none'; media-src 'self'; img-src 'self'; style-src 'unsafe-inline'; "
       f"script-src 'sha256-{base64.b64encode(hashlib.sha256(AUTOPLAY.encode()).digest()).decode()}'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


@dataclass(frozen=True)
class Server:
    """A server as the gallery shows it: its name (None when the bot is not in it) and its gallery page's path."""

    guild_id: int
    name: str | None
    page: str

    @property
    def title(self) -> str:
        return self.name or f"Server {self.guild_id}"

    @property
    def discord(self) -> str:
        return DISCORD_SERVER.format(guild=self.guild_id)


@dataclass(frozen=True)
class Pager:
    """Which page of how many, with how many videos a page."""

    page: int
    pages: int
    per_page: int


def listing(title: str, entries: list[ShowcaseRecord], pager: Pager, *, server: Server | None,
            front: str | None, servers: dict[int, Server] | None = None, gone: Collection[int] = ()) -> str:
    """A page of video tiles: the title with the server's link (and the way to the front page), then the tiles or
    the explanation of an empty showcase, then the pager. `servers` names each tile's server on a mixed page; the
    jobs in `gone` have no video file any more (their tiles say so instead of a player that would not play)."""
    links = []
    if server is not None:
        links.append(f'<a href="{server.discord}">Open {_text(server.title)} in Discord</a>')
    if front is not None:
        links.append(f'<a href="{front}">← All servers</a>')
    header = f"<header><h1>{_text(title)}</h1>{_links(links)}</header>"
    cards = "\n".join(_card(entry, servers.get(entry.guild_id) if servers else None, entry.job_id not in gone)
                      for entry in entries)
    main = f'<main class="grid">\n{cards}\n</main>' if entries else f"<main>{EMPTY}</main>"
    return document(title, f"{header}{main}{_pager(pager)}<script>{AUTOPLAY}</script>")


def servers_page(title: str, servers: list[tuple[Server, int]]) -> str:
    """The servers with approved videos, each linking to its page."""
    items = "".join(f'<li><a href="{server.page}">{_text(server.title)} · {_text(title)}</a> · '
                    f"{counted(count, 'video')}</li>" for server, count in servers)
    body = f"<main><ul>{items}</ul></main>" if servers else f"<main>{EMPTY}</main>"
    return document(title, f"<header><h1>{_text(title)}</h1></header>{body}")


def not_found_page(title: str) -> str:
    """The page of a path the gallery has nothing at, naming nothing of the path (a server's id or name, a job's),
    with the way to the front page."""
    back = _links([f'<a href="/">← {_text(title)}</a>'])
    body = f"<header><h1>Page not found</h1>{back}</header><main>{NOT_FOUND}</main>"
    return document(f"Page not found · {title}", body)


def video_page(entry: ShowcaseRecord, server: Server, site: str, *, base: str, poster: bool, kept: bool = True) -> str:
    """One video, large, with its prompt and credit, the way back to its server's gallery and to Discord, and the
    Open Graph and Twitter tags of a link preview (absolute URLs from `base`; the image only when there is a
    poster; no video, and a line saying so, when its file is no longer `kept`)."""
    title = _short(entry.prompt)
    links = [f'<a href="{server.page}">← {_text(server.title)} · {_text(site)}</a>']
    if entry.channel_id is not None and entry.message_id is not None:
        post = DISCORD_POST.format(guild=entry.guild_id, channel=entry.channel_id, message=entry.message_id)
        links.append(f'<a href="{post}">See the post in Discord</a>')
    links.append(f'<a href="{server.discord}">Open {_text(server.title)} in Discord</a>')
    size = f' width="{entry.width}" height="{entry.height}"' if entry.width and entry.height else ""
    shown = f' poster="/videos/{entry.job_id}.jpg"' if poster else ""
    player = (f'<video src="/videos/{entry.job_id}.mp4"{shown}{size} controls loop playsinline preload="metadata" '
              f'aria-label="{_text(_label(entry))}"></video>' if kept else f'<p class="gone">{GONE}</p>')
    figure = (f'<figure class="one">{player}<figcaption><p class="full">{_text(entry.prompt)}</p>{_meta(entry)}'
              "</figcaption></figure>")
    head = _open_graph(entry, f"{server.title} · {site}", base=base, poster=poster, video=kept)
    return document(f"{title} · {server.title}", f"<header>{_links(links)}</header><main>{figure}</main>", head)


def _open_graph(entry: ShowcaseRecord, site: str, *, base: str, poster: bool, video: bool = True) -> str:
    """The link preview's tags: og:video (an MP4 Discord plays inline, when there is one) with its size, og:image
    the poster."""
    url, mp4 = f"{base}/videos/{entry.job_id}", f"{base}/videos/{entry.job_id}.mp4"
    description = f"by {entry.author_name} · ⭐ {_votes(entry.votes)}"
    tags = [("og:site_name", site), ("og:title", _short(entry.prompt)), ("og:description", description),
            ("og:type", "video.other" if video else "website"), ("og:url", url)]
    if video:
        tags += [("og:video", mp4), ("og:video:type", "video/mp4")]
        if mp4.startswith("https://"):
            tags.append(("og:video:secure_url", mp4))
        if entry.width and entry.height:
            tags += [("og:video:width", str(entry.width)), ("og:video:height", str(entry.height))]
    if poster:
        tags += [("og:image", f"{url}.jpg"), ("og:image:type", "image/jpeg"), ("og:image:alt", _label(entry))]
        if entry.width and entry.height:
            tags += [("og:image:width", str(entry.width)), ("og:image:height", str(entry.height))]
    twitter = [("twitter:card", "summary_large_image" if poster else "summary"),
               ("twitter:title", _short(entry.prompt)), ("twitter:description", description)]
    if poster:
        twitter.append(("twitter:image", f"{url}.jpg"))
    return "".join([f'<link rel="canonical" href="{_text(url)}">',
                    f'<meta name="description" content="{_text(description)}">',
                    *(f'<meta property="{name}" content="{_text(value)}">' for name, value in tags),
                    *(f'<meta name="{name}" content="{_text(value)}">' for name, value in twitter)])


def document(title: str, body: str, head: str = "") -> str:
    """A whole HTML page around `body` and extra `head` tags (both already escaped)."""
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{_text(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">{head}<style>{STYLE}</style>'
            f"</head><body>{body}</body></html>\n")


def _card(entry: ShowcaseRecord, server: Server | None, kept: bool = True) -> str:
    """One tile: the video (its poster until it plays; a line when its file is no longer `kept`), the prompt
    linking to its page, the credit."""
    page = f"/videos/{entry.job_id}"
    where = f'<p class="server">in {_text(server.title)}</p>' if server is not None else ""
    player = (f'<div class="tile"><video src="{page}.mp4" poster="{page}.jpg" data-page="{page}" controls muted loop '
              f'playsinline preload="none" aria-label="{_text(_label(entry))}"></video></div>' if kept else
              f'<div class="tile gone">{GONE}</div>')
    return (f'<article class="card" id="job-{entry.job_id}">{player}<a class="prompt" href="{page}" '
            f'title="{_text(entry.prompt)}">{_text(entry.prompt)}</a>{_meta(entry)}{where}</article>')


def _meta(entry: ShowcaseRecord) -> str:
    """by author · ⭐ votes · date; a long name is cut with an ellipsis (its whole in the tooltip)."""
    date = entry.decided_at.date().isoformat() if entry.decided_at else ""
    author = _text(entry.author_name)
    return (f'<p class="meta"><span class="who" title="{author}">by {author}</span><span aria-hidden="true">·</span>'
            f'<span>⭐ {_votes(entry.votes)}</span><span aria-hidden="true">·</span>'
            f'<time datetime="{date}">{date}</time></p>')


def _pager(pager: Pager) -> str:
    links = []
    if pager.page > 1:
        links.append(f'<a rel="prev" href="?page={pager.page - 1}&amp;per_page={pager.per_page}">← Newer</a>')
    links.append(f"<span>Page {pager.page} of {pager.pages}</span>")
    if pager.page < pager.pages:
        links.append(f'<a rel="next" href="?page={pager.page + 1}&amp;per_page={pager.per_page}">Older →</a>')
    return f"<nav>{''.join(links)}</nav>"


def _links(links: list[str]) -> str:
    return f'<p class="links">{"".join(links)}</p>' if links else ""


def _label(entry: ShowcaseRecord) -> str:
    """A video's accessible name: whose video of what."""
    return f"Video by {entry.author_name}: {entry.prompt}"


def _short(text: str) -> str:
    return clip(one_line(text), TITLE_CHARS)


def _votes(votes: int) -> str:
    return counted(votes, "vote")


def _text(text: str) -> str:
    """User text made safe for HTML content and quoted attributes, shown in the order it is read."""
    return html.escape(one_line(text), quote=True)  # without the characters bot.characters.shown drops in Discord
