"""A small aiohttp server the bot runs beside the gateway (the gallery, health and metrics)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.log import server_logger

from storage.errors import unavailable

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
NOSNIFF = {"X-Content-Type-Options": "nosniff"}  # a body is what its Content-Type says, never sniffed into HTML
# An idle kept-alive connection is closed after this long (aiohttp's own default is 3,630 s: on a public port without
# a reverse proxy, clients that open connections and leave them idle would hold a file descriptor each for an hour).
# A browser reading an MP4 sends its next range within seconds; one that pauses longer simply connects again.
KEEPALIVE_S = 30.0
SERVER = "videobot"  # the Server header: aiohttp's default names its version and Python's to every scanner

log = logging.getLogger(__name__)


class LocalSite:
    """Owns `self.app`; `start` listens on host:port and `stop` closes it, so subclasses only add routes. Every
    response carries `headers` and a Server header that names no versions, aiohttp's own errors too (a 404 of an
    unknown path, a 416 of a range past the end); idle connections close after KEEPALIVE_S."""

    def __init__(self, headers: Mapping[str, str] = NOSNIFF) -> None:
        self.app = web.Application(middlewares=[_database_down])
        self.app.on_response_prepare.append(self._headed)
        self._headers = dict(headers)
        self._runner: web.AppRunner | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen on host:port (port 0: any free port); returns the port. A port in use raises OSError."""
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False, logger=_ServerLog(server_logger),
                                     keepalive_timeout=KEEPALIVE_S)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, host, port).start()
        except OSError:
            await self.stop()
            raise
        port = self._runner.addresses[0][1]
        log.info("%s listening on http://%s:%d/", type(self).__name__, host, port)
        return port

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _headed(self, request: web.Request, response: web.StreamResponse) -> None:
        """The site's headers on a response about to be sent; an error's without the cache lifetime its handler
        meant for the content (a video's 404 or 416 kept for a day would hide the video that long)."""
        for name, value in self._headers.items():
            response.headers.setdefault(name, value)
        response.headers["Server"] = SERVER
        if response.status >= 400:
            response.headers.popall("Cache-Control", None)


@web.middleware
async def _database_down(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A database that cannot answer now (locked, gone, its server down) is a 503 with Retry-After and one warning
    line, not a 500: the page works again once it answers."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception as error:
        if not unavailable(error):
            raise
        log.warning("%s %s: the database did not answer (%s)", request.method, request.path,
                    str(error).splitlines()[0] if str(error) else type(error).__name__)
        raise web.HTTPServiceUnavailable(text="the database is not answering right now; try again in a minute",
                                         headers={"Retry-After": "60"}) from None


class _ServerLog(logging.LoggerAdapter):
    """aiohttp's server log, where a request that is not HTTP aiohttp can read (a URL or header line past 8190 bytes,
    no Host, a control character in a header, a URL such as `*`) is one debug line naming the client and the problem,
    not an ERROR traceback: on a public port strangers and scanners send them all day, and aiohttp answers each with a
    400 line. Errors of the site itself stay ERROR tracebacks."""

    def exception(self, msg: object, *args: Any, exc_info: Any = True, **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError) and 400 <= exc_info.code < 500:
            problem = " ".join(line.strip() for line in exc_info.message.splitlines() if line.strip())
            log.debug("%s: %d %s", str(msg) % args if args else msg, exc_info.code, problem[:200])
            return
        super().exception(msg, *args, exc_info=exc_info, **kwargs)
