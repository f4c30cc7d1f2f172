"""The web gallery: pages of approved videos, escaped text, 400s naming the range, range requests, and real playback
in headless Chromium (driven through the DevTools protocol)."""

import asyncio
import base64
import json
import os
import shutil
import signal
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.app import run
from bot.media import MediaStore
from bot.web.gallery import Gallery
from storage import Repository, create_engine, migrate
from storage.showcase import ShowcaseRepository
from tests.bot.conftest import settings_for
from tests.bot.helpers import WAIT, tiny_mp4

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SERVER, OTHER = 3, 4  # the servers the videos were made in
PARAMS = {"steps": 3, "guidance": 9.0, "frames": 16, "aspect": "1:1", "width": 64, "height": 64, "fps": 8}


@dataclass
class World:
    """A migrated database, a media directory and a running gallery."""

    jobs: Repository
    showcase: ShowcaseRepository
    media: MediaStore
    url: str

    async def approved(self, prompt: str, author: str = "bob", votes: int = 0, server: int = SERVER) -> int:
        """A finished job of `server` whose kept video was nominated and approved; returns its job id."""
        job = await self.jobs.create_job(user_id=1, user_name=author, channel_id=2, guild_id=server, prompt=prompt,
                                         params=PARAMS)
        await self.jobs.mark_running(job.id)
        await self.jobs.mark_done(job.id, seed=1, gpu_s=0.1, output_bytes=1)
        await self.media.save(job.id, tiny_mp4())
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
        yield World(Repository(engine), showcase, media, f"http://127.0.0.1:{port}")
    finally:
        await gallery.stop()
        await engine.dispose()


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with opened(tmp_path) as made:
        yield made


async def fetch(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as response:
        return response.status, dict(response.headers), await response.read()


async def test_pages_list_approved_videos_newest_first_with_author_votes_and_date(world: World):
    for n in range(5):
        await world.approved(f"prompt number {n}", author=f"author{n}", votes=n)

    status, headers, body = await fetch(f"{world.url}/?page=2&per_page=2")
    page = body.decode()

    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert page.index("prompt number 2") < page.index("prompt number 1")
    assert "prompt number 4" not in page and "prompt number 0" not in page
    assert "by author2 · ⭐ 2 votes · <time" in page and 'src="/videos/3.mp4"' in page
    assert "Page 2 of 3" in page and "?page=1&amp;per_page=2" in page and "?page=3&amp;per_page=2" in page


@pytest.mark.parametrize(("query", "says"), [
    ("page=0", "page must be a whole number from 1 to 1, got '0'"),
    ("page=2", "page must be a whole number from 1 to 1, got '2'"),
    ("page=two", "page must be a whole number from 1 to 1, got 'two'"),
    ("per_page=0", "per_page must be a whole number from 1 to 50, got '0'"),
    ("per_page=51", "per_page must be a whole number from 1 to 50, got '51'"),
    ("per_page=-3&page=1", "per_page must be a whole number from 1 to 50, got '-3'"),
])
async def test_out_of_range_query_values_get_a_400_naming_the_range(world: World, query: str, says: str):
    await world.approved("a calm lake", votes=1)

    status, _, body = await fetch(f"{world.url}/?{query}")

    assert status == 400 and body.decode() == says


async def test_an_empty_gallery_says_so(world: World):
    status, _, body = await fetch(f"{world.url}/")

    assert status == 200 and "No videos in the showcase yet." in body.decode() and "Page 1 of 1" in body.decode()


async def test_prompts_and_names_are_escaped_and_scripts_are_forbidden(world: World):
    await world.approved('<script>alert("x")</script> & <img src=x onerror=alert(1)>', author="<b>Eve</b>")

    _, headers, body = await fetch(f"{world.url}/")
    page = body.decode()

    assert "<script>" not in page and "<img" not in page and "<b>Eve" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;img src=x onerror=alert(1)&gt;" in page
    assert "by &lt;b&gt;Eve&lt;/b&gt;" in page
    assert "default-src 'none'" in headers["Content-Security-Policy"]


async def test_videos_are_served_as_mp4_with_range_requests(world: World):
    job_id = await world.approved("a spinning top")
    data = world.media.path(job_id).read_bytes()

    full = await fetch(f"{world.url}/videos/{job_id}.mp4")
    part = await fetch(f"{world.url}/videos/{job_id}.mp4", Range="bytes=100-199")
    tail = await fetch(f"{world.url}/videos/{job_id}.mp4", Range="bytes=-50")

    assert full[0] == 200 and full[1]["Content-Type"] == "video/mp4" and full[2] == data
    assert full[1]["Accept-Ranges"] == "bytes"
    assert part[0] == 206 and part[1]["Content-Range"] == f"bytes 100-199/{len(data)}" and part[2] == data[100:200]
    assert tail[0] == 206 and tail[2] == data[-50:]


async def test_only_approved_undeleted_videos_are_served(world: World):
    shown, gone = await world.approved("shown"), await world.approved("deleted later")
    waiting = await world.jobs.create_job(user_id=1, user_name="bob", channel_id=2, prompt="waiting", params=PARAMS)
    await world.media.save(waiting.id, b"not approved")
    await world.showcase.delete_job(gone)

    statuses = [(await fetch(f"{world.url}/videos/{job}.mp4"))[0] for job in (shown, gone, waiting.id, 999)]
    _, _, body = await fetch(f"{world.url}/")

    assert statuses == [200, 404, 404, 404]
    assert "deleted later" not in body.decode() and "waiting" not in body.decode()


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
    assert (missing, says.decode()) == (404, "server 999 has no showcase here")


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
    assert quiet == 200 and "No videos in the showcase yet." in empty.decode()  # the bot is in it: an empty page


async def test_the_front_page_can_be_one_servers_page(tmp_path: Path):
    async with opened(tmp_path, front_page=str(OTHER)) as world:
        await world.approved("a lighthouse", server=SERVER)
        await world.approved("a windmill", server=OTHER)
        _, _, body = await fetch(f"{world.url}/")

    assert "windmill" in body.decode() and "lighthouse" not in body.decode()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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
        if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
            pytest.fail("CI must test gallery playback in Chromium: install the Debian package `chromium`")
        pytest.skip("chromium is not installed (apt-get install chromium)")
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


PLAY = """(async () => {
  const video = document.querySelector('video');
  const failed = new Promise((_, reject) => video.addEventListener('error',
      () => reject(new Error('media error ' + video.error.code)), {once: true}));
  await Promise.race([video.play(), failed]);
  await Promise.race([failed, new Promise(resolve => {
    const check = () => video.currentTime > 0 && video.readyState >= 2 && resolve();
    video.addEventListener('timeupdate', check); check();
  })]);
  return {currentTime: video.currentTime, readyState: video.readyState, duration: video.duration,
          width: video.videoWidth, h264: video.canPlayType('video/mp4; codecs="avc1.64001e"')};
})()"""


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


async def test_chromium_plays_a_gallery_video_and_a_screenshot_is_saved(world: World, browser: DevTools,
                                                                       tmp_path: Path):
    await world.approved("a colour sweep <i>for the browser</i>", author="bob")
    target = await browser.send("Target.createTarget", url="about:blank")
    session = (await browser.send("Target.attachToTarget", targetId=target["targetId"], flatten=True))["sessionId"]
    await browser.send("Page.enable", session)
    await browser.send("Page.navigate", session, url=f"{world.url}/")
    await browser.event("Page.loadEventFired")

    played = await browser.send("Runtime.evaluate", session, expression=PLAY, awaitPromise=True,
                                returnByValue=True)
    shot = await browser.send("Page.captureScreenshot", session, format="png")
    path = tmp_path / "gallery-screenshot.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    print(f"gallery screenshot: {path}")

    state = played["result"].get("value")
    print(f"chromium playback: {state}")
    assert state is not None, played  # an exception (e.g. a media error) has no value
    assert state["currentTime"] > 0 and state["readyState"] >= 2 and state["width"] == 64
    assert state["duration"] == pytest.approx(2.0, abs=0.2)
    assert path.read_bytes().startswith(b"\x89PNG") and path.stat().st_size > 1000
