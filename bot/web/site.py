"""A small aiohttp server the bot runs beside the gateway (the gallery, health and metrics)."""

from __future__ import annotations

import logging

from aiohttp import web

log = logging.getLogger(__name__)


class LocalSite:
    """Owns `self.app`; `start` listens on host:port and `stop` closes it, so subclasses only add routes."""

    def __init__(self) -> None:
        self.app = web.Application()
        self._runner: web.AppRunner | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen on host:port (port 0: any free port); returns the port. A port in use raises OSError."""
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
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
