"""The gallery as a public site meets it: browsers seeking MP4s on one kept-alive connection, conditional requests,
and strangers' malformed requests, each answered without an error in the bot's log."""

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.bot.helpers import WAIT
from tests.bot.web.test_gallery import World, opened


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
