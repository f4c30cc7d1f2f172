"""The gallery as a public site meets it: browsers seeking MP4s on one kept-alive connection, conditional and If-Range
requests, odd Host headers, and strangers' malformed requests, each answered without an error in the bot's log."""

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from bot.web import site
from tests.bot.helpers import WAIT, tiny_mp4
from tests.bot.web.test_gallery import World, fetch, opened


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with opened(tmp_path) as made:
        yield made


async def one_connection(url: str, requests: list[str]) -> list[tuple[str, dict[str, str], bytes]]:
    """Send each request (its request line and headers, one per line) in turn on one kept-alive connection; the
    answers' status lines, headers and bodies, as many as came before the server closed it."""
    address = urlsplit(url)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    answers = []
    try:
        for request in requests:
            method, *_ = request.split(" ", 1)
            writer.write("\r\n".join([*request.split("\n"), f"Host: {address.netloc}", "", ""]).encode())
            await writer.drain()
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
            except asyncio.IncompleteReadError:
                break  # closed by the server
            status, *lines = head.decode("latin-1").strip().split("\r\n")
            headers = {name.lower(): value for name, _, value in (line.partition(": ") for line in lines)}
            length = 0 if method == "HEAD" else int(headers.get("content-length", 0))
            answers.append((status, headers, await asyncio.wait_for(reader.readexactly(length), WAIT)))
    finally:
        writer.close()
    return answers


async def test_videos_and_posters_keep_the_connection_open_and_log_no_error(world: World, caplog):
    """Each video or poster was sent, then aiohttp prepared it a second time: an "Unhandled exception" traceback in
    the log and a closed connection after every one (a browser seeking an MP4 reconnected for each range)."""
    caplog.set_level(logging.DEBUG)
    job_id = await world.approved("a spinning top")
    data = world.media.path(job_id).read_bytes()
    jpeg = world.media.poster_path(job_id).read_bytes()

    answers = await one_connection(world.url, [
        f"GET /videos/{job_id}.mp4 HTTP/1.1", f"GET /videos/{job_id}.mp4 HTTP/1.1\nRange: bytes=0-1",
        f"GET /videos/{job_id}.mp4 HTTP/1.1\nRange: bytes=100-", f"HEAD /videos/{job_id}.mp4 HTTP/1.1",
        f"GET /videos/{job_id}.jpg HTTP/1.1", f"GET /videos/{job_id} HTTP/1.1"])

    assert [status for status, _, _ in answers] == ["HTTP/1.1 200 OK", "HTTP/1.1 206 Partial Content",
                                                    "HTTP/1.1 206 Partial Content", "HTTP/1.1 200 OK",
                                                    "HTTP/1.1 200 OK", "HTTP/1.1 200 OK"]
    assert [body for _, _, body in answers[:5]] == [data, data[:2], data[100:], b"", jpeg]
    assert answers[2][1]["content-range"] == f"bytes 100-{len(data) - 1}/{len(data)}"
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING] == []


async def test_a_browsers_cached_video_is_answered_304_on_the_same_connection(world: World, caplog):
    job_id = await world.approved("a spinning top")
    [(_, first, _)] = await one_connection(world.url, [f"GET /videos/{job_id}.mp4 HTTP/1.1"])

    answers = await one_connection(world.url, [
        f"GET /videos/{job_id}.mp4 HTTP/1.1\nIf-None-Match: {first['etag']}",
        f"GET /videos/{job_id}.mp4 HTTP/1.1\nIf-Modified-Since: {first['last-modified']}",
        f"GET /videos/{job_id}.mp4 HTTP/1.1\nIf-Range: {first['etag']}\nRange: bytes=0-9"])

    assert [status for status, _, _ in answers] == ["HTTP/1.1 304 Not Modified", "HTTP/1.1 304 Not Modified",
                                                    "HTTP/1.1 206 Partial Content"]
    assert [body for _, _, body in answers] == [b"", b"", world.media.path(job_id).read_bytes()[:10]]
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING] == []


async def answer_to(url: str, request: bytes) -> bytes:
    """The whole answer to these bytes, sent as they are on a new connection."""
    address = urlsplit(url)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), WAIT)
    finally:
        writer.close()


@pytest.mark.parametrize("request_bytes", [
    b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",  # a URL past aiohttp's 8190 bytes
    b"GET /?" + b"page=1&" * 2000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nCookie: " + b"c" * 9000 + b"\r\n\r\n",  # a header line as long
    b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n",  # no Host
    b"GET * HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1\x00\r\n\r\n",  # a NUL in a header
    b"GET /videos/1.mp4 HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
], ids=["long-url", "long-query", "long-header", "no-host", "asterisk", "nul-in-header", "negative-length"])
async def test_a_request_aiohttp_cannot_read_is_a_400_without_a_traceback_in_the_log(world: World, caplog,
                                                                                   request_bytes: bytes):
    """Each logged "Error handling request" at ERROR with a traceback: on a public gallery, scanners filled the
    bot's log with them."""
    caplog.set_level(logging.DEBUG)
    await world.approved("a spinning top")

    answer = await answer_to(world.url, request_bytes)

    assert answer.startswith(b"HTTP/1.") and answer.split(b"\r\n")[0].endswith(b" 400 Bad Request"), answer[:300]
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING] == []
    [line] = [record for record in caplog.records if record.name == "bot.web.site"]
    assert line.getMessage().startswith("Error handling request from 127.0.0.1: 400 ") and not line.exc_info


async def test_an_error_of_the_gallery_itself_is_still_a_500_with_its_traceback(world: World, caplog, monkeypatch):
    async def broken(job_id: int):
        raise RuntimeError("a bug in the gallery")

    monkeypatch.setattr(world.showcase, "shown", broken)

    answer = await answer_to(world.url, b"GET /videos/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")

    assert answer.split(b"\r\n")[0] == b"HTTP/1.1 500 Internal Server Error"
    [error] = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert error.exc_info and str(error.exc_info[1]) == "a bug in the gallery"


async def test_a_range_with_an_if_range_of_an_older_copy_gets_the_whole_new_file(world: World):
    """aiohttp read no entity-tag in If-Range: a browser resuming a video kept before the file was replaced got the
    asked part of the new file as a 206, spliced onto the old one's first bytes."""
    job_id = await world.approved("a spinning top")
    _, old, _ = await fetch(f"{world.url}/videos/{job_id}.mp4")
    await world.media.save(job_id, tiny_mp4(96))
    new = world.media.path(job_id).read_bytes()

    stale = await fetch(f"{world.url}/videos/{job_id}.mp4", Range="bytes=100-199", **{"If-Range": old["Etag"]})
    weak = await fetch(f"{world.url}/videos/{job_id}.mp4", Range="bytes=100-199", **{"If-Range": f"W/{old['Etag']}"})
    unreadable = await fetch(f"{world.url}/videos/{job_id}.mp4", Range="bytes=100-199", **{"If-Range": "yesterday"})

    for status, headers, body in (stale, weak, unreadable):
        assert (status, body) == (200, new) and "Content-Range" not in headers


@pytest.mark.parametrize(("asked", "status", "says"), [
    ("bytes=100-199", 206, None), ("bytes=100-109, 200-209", 200, None), ("items=0-5", 200, None),
    ("bytes=abc", 416, "is no byte range such as bytes=0-1023, bytes=1024- or bytes=-1024 "
                       "(the video has {size} bytes)"),
    ("bytes=-0", 416, "asks for none of the video's {size} bytes (0 to {last})"),
    ("bytes=999999-", 416, "asks for none of the video's {size} bytes (0 to {last})"),
])
@pytest.mark.parametrize("validator", ["Etag", "Last-Modified"])
async def test_a_range_with_the_files_own_if_range_is_read_as_without_it(world: World, validator: str, asked: str,
                                                                         status: int, says: str | None):
    """With an If-Range, aiohttp alone read the Range: several ranges or another unit were an empty 416 (the whole
    file without If-Range), a range that is none an empty 416 naming nothing, and bytes=-0 a 206 of the whole file."""
    job_id = await world.approved("a spinning top")
    data = world.media.path(job_id).read_bytes()
    _, first, _ = await fetch(f"{world.url}/videos/{job_id}.mp4")

    got, headers, body = await fetch(f"{world.url}/videos/{job_id}.mp4", Range=asked, **{"If-Range": first[validator]})

    assert got == status, (got, body[:200])
    if status == 206:
        assert body == data[100:200] and headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    elif status == 200:
        assert body == data
    else:
        assert body.decode() == f"Range {asked!r} " + says.format(size=len(data), last=len(data) - 1)


@pytest.mark.parametrize(("host", "shown"), [(b"\xff\xfe", r"'\udcff\udcfe'"), (b"a b", "'a b'"), (b"", "''"),
                                             (b"[::1", "'[::1'"), (b"evil/x?", "'evil/x?'")],
                         ids=["not-utf8", "space", "empty", "half-ip", "path"])
async def test_a_video_page_asked_with_a_host_that_is_no_host_name_is_a_400_naming_it(world: World, caplog,
                                                                                    host: bytes, shown: str):
    """Without GALLERY_PUBLIC_URL a video's page builds its links from Host: bytes that are not UTF-8 there were a 500
    with a UnicodeEncodeError traceback, and the others links to no site."""
    job_id = await world.approved("a calm lake")

    answer = await answer_to(world.url, b"GET /videos/%d HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                             % (job_id, host))

    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0] == b"HTTP/1.1 400 Bad Request" and b"text/plain; charset=utf-8" in head
    assert body.decode() == f"Host {shown} is no host name such as videos.example.org or 127.0.0.1:8080"
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING] == []


@pytest.mark.parametrize("host", ["videos.example.org", "gallery_web:8080", "127.0.0.1:8080", "[::1]:8080"])
async def test_a_video_page_links_to_any_host_name_or_address_it_was_asked_by(world: World, host: str):
    job_id = await world.approved("a calm lake")

    answer = await answer_to(world.url, f"GET /videos/{job_id} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
                             .encode())

    assert answer.startswith(b"HTTP/1.1 200 OK")
    assert f'<meta property="og:video" content="http://{host}/videos/{job_id}.mp4">'.encode() in answer


async def test_the_server_names_no_versions_and_closes_idle_connections(tmp_path: Path, monkeypatch):
    """Every answer said `Server: Python/3.x aiohttp/3.x` to every scanner, and an idle kept-alive connection stayed
    open for aiohttp's default 3,630 s: without a reverse proxy, idle clients could hold the bot's file descriptors."""
    assert 10 <= site.KEEPALIVE_S <= 120  # a browser's next range comes within it; an idle client goes well before
    monkeypatch.setattr(site, "KEEPALIVE_S", 0.05)  # the real 30 s, shortened so the close comes at once
    async with opened(tmp_path) as world:
        job_id = await world.approved("a spinning top")
        address = urlsplit(world.url)
        reader, writer = await asyncio.open_connection(address.hostname, address.port)
        try:
            for path in (f"/videos/{job_id}.mp4", "/no-such-page"):
                writer.write(f"HEAD {path} HTTP/1.1\r\nHost: {address.netloc}\r\n\r\n".encode())
                head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)).decode("latin-1")
                assert "\r\nServer: videobot\r\n" in head and "aiohttp" not in head and "Python" not in head
            assert await asyncio.wait_for(reader.read(), WAIT) == b""  # closed by the server once idle
        finally:
            writer.close()
