"""`/healthz` and `/metrics` over HTTP (aiohttp), served by `python -m bot` on HEALTH_HOST:HEALTH_PORT.

`GET /healthz` answers JSON — the gateway connection and its latency, whether the model is loaded, whether the
database answers, the queue — with status 200 when the bot can serve /video and 503 (naming the problems) when
it cannot. `GET /metrics` is the Prometheus text format of `bot.web.metrics`. Discord-free: the client is read through
the few attributes below.
"""

from __future__ import annotations

import asyncio
import logging
import math
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from bot.jobs.service import VideoService
from bot.web.metrics import PREFIX, Metrics
from bot.web.site import LocalSite
from storage import DatabaseUnreachable, Repository
from t2v.sizes import bytes_text

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 5.0  # a database slower than this to answer one primary-key lookup counts as down
LOW_DISK_BYTES = 100 * 10**6  # less free space than this where the database or the kept videos are: a problem (a
# full disk fails every /video's row, and SQLite's reads go on answering, so the database probe alone stays green)


class Client(Protocol):
    """What health needs of the Discord client (discord.py's `Client`, and the bot's service)."""

    service: VideoService | None
    ws: Any  # the gateway socket, None while there is none

    @property
    def latency(self) -> float: ...

    def is_ready(self) -> bool: ...

    def is_closed(self) -> bool: ...


NOT_LOGGED_IN = "not started: the bot has not logged in to Discord yet, and loads the model once it has"


class Health(LocalSite):
    """The health and metrics application, and a site to run it on."""

    def __init__(self, client: Client, metrics: Metrics, repo: Repository | None = None, *,
                 folders: Mapping[str, Path] | None = None) -> None:
        self.client = client
        self.metrics = metrics
        self.repo = repo  # probed on each /healthz; None: not checked
        self.folders = dict(folders or {})  # what is kept where ("database", "media"): their disks' free space
        self._database_problem: str | None = None  # the last probe's, logged once: a monitor probes every few seconds
        super().__init__()
        self.app.add_routes([web.get("/healthz", self.healthz), web.get("/metrics", self.prometheus)])

    async def healthz(self, request: web.Request) -> web.Response:
        """The state of each part as JSON; 200 when all are well, else 503 with the problems named."""
        report = {"gateway": self._gateway(), "model": self._model(), "database": await self._database(),
                  "disk": await asyncio.to_thread(self._disk), "queue": self._queue()}
        problems = [problem for part in report.values() if (problem := part.pop("problem", None))]
        body = {"status": "unhealthy" if problems else "ok", "problems": problems, **report}
        return web.json_response(body, status=503 if problems else 200)

    async def prometheus(self, request: web.Request) -> web.Response:
        """The metrics in Prometheus' text format, the disks' free space read now (not left at the last /healthz,
        which nothing asks for under systemd)."""
        await asyncio.to_thread(self._disk)
        body, content_type = self.metrics.render()
        return web.Response(body=body, headers={"Content-Type": content_type})

    def _gateway(self) -> dict[str, Any]:
        """Connected: ready, not closed, with an open socket; latency of the last heartbeat."""
        client = self.client
        socket = None if client.is_closed() else client.ws
        connected = client.is_ready() and socket is not None and bool(getattr(socket, "open", False))
        latency = client.latency
        part: dict[str, Any] = {"connected": connected,
                                "latency_ms": round(latency * 1000, 1) if math.isfinite(latency) else None}
        if not connected:
            part["problem"] = "not connected to the Discord gateway"
        return part

    def _model(self) -> dict[str, Any]:
        """Loaded: the service started with the model on at least one device."""
        service = self.client.service
        workers = 0 if service is None else service.workers
        reason = (NOT_LOGGED_IN if service is None  # the service, and with it the models, start after Discord's login
                  else service.unavailable_reason)
        part: dict[str, Any] = {"loaded": workers > 0, "workers": workers, "error": reason}
        if service is not None and service.compile_status is not None:
            part["shapes"] = service.compile_status()  # compiled, compiling, waiting, failed
        if service is not None and service.stuck is not None:  # a stuck or broken worker: the bot restarts
            part["problem"] = service.stuck
        elif not workers:
            part["problem"] = f"the model is not loaded ({reason or 'still loading'})"
        return part

    async def _database(self) -> dict[str, Any]:
        """Reachable and migrated: one primary-key lookup in the jobs table answers in time, and a SQLite file is
        still where it was opened (`check_file`)."""
        if self.repo is None:
            return {"checked": False}
        try:
            await self.repo.check_file()
            await asyncio.wait_for(self.repo.get_job(0), PROBE_TIMEOUT_S)
        except DatabaseUnreachable as error:
            return self._database_down(f"the database cannot serve: {error}")
        except Exception as error:
            return self._database_down(f"the database did not answer ({type(error).__name__})", f": {error!r}")
        if self._database_problem is not None:
            log.info("health: the database answers again (it was down: %s)", self._database_problem)
            self._database_problem = None
        return {"checked": True, "ok": True}

    def _database_down(self, problem: str, detail: str = "") -> dict[str, Any]:
        """The database part naming `problem`, logged (with `detail`) when it begins or changes, not at every probe of
        it."""
        if problem != self._database_problem:
            log.warning("health: %s%s", problem, detail)
            self._database_problem = problem
        return {"checked": True, "ok": False, "problem": problem}

    def _disk(self) -> dict[str, Any]:
        """Free bytes on the disk of each folder the bot writes to (of its nearest existing folder); a problem below
        LOW_DISK_BYTES. Each reading is a /metrics gauge too (read again at each scrape)."""
        part: dict[str, Any] = {}
        low = []
        for what, folder in self.folders.items():
            existing = next((path for path in (folder, *folder.parents) if path.is_dir()), None)
            if existing is None:
                continue
            free = shutil.disk_usage(existing).free
            part[f"{what}_free_bytes"] = free
            self.metrics.disk_free.labels(what).set(free)
            if free < LOW_DISK_BYTES:
                low.append(f"{bytes_text(free)} free for the {what} ({folder})")
        if low:
            part["problem"] = f"the disk is almost full: {', '.join(low)}; new videos fail when it is"
        return part

    def _queue(self) -> dict[str, int]:
        """Queued and running jobs, as /metrics shows them."""
        sample = self.metrics.registry.get_sample_value
        return {"depth": int(sample(f"{PREFIX}_queue_depth") or 0), "running": int(sample(f"{PREFIX}_jobs_running")
                                                                                    or 0)}
