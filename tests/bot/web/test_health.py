"""/healthz and /metrics: what each part reports, through aiohttp's test client and through a real `run()` on the
fake Discord, where the numbers move with the /video requests."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from bot.app import run, start_sites
from bot.errors import SettingsError
from bot.gpu.models import ASPECTS
from bot.startup import check_environment, listen_problem
from bot.web.health import Health
from bot.web.metrics import Metrics
from storage import Repository, create_engine, migrate
from tests.bot.conftest import settings_for
from tests.bot.helpers import WAIT, fake_torch, has_video, video, woken_by_logs
from tests.fakediscord import FakeDiscord
from tests.net import free_port

HEALTHY = {"gateway": {"connected": True, "latency_ms": 42.0}, "model": {"loaded": True, "workers": 1, "error": None},
           "database": {"checked": True, "ok": True}, "disk": {}, "queue": {"depth": 0, "running": 0}}


@dataclass
class Client:
    """Stands in for the discord.py client: connected, with a started service, until a test says otherwise."""

    service: Any = field(default_factory=lambda: SimpleNamespace(workers=1, unavailable_reason=None,
                                                                 compile_status=None, stuck=None))
    ws: Any = field(default_factory=lambda: SimpleNamespace(open=True))
    latency: float = 0.042
    ready: bool = True

    def is_ready(self) -> bool:
        return self.ready

    def is_closed(self) -> bool:
        return False


class DeadRepository:
    """A database that no longer answers."""

    async def check_file(self) -> None:
        """A server's database: no file to check."""

    async def get_job(self, job_id: int) -> None:
        raise ConnectionRefusedError("connection refused")


@pytest.fixture
async def repo(tmp_path: Path) -> AsyncIterator[Repository]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    await migrate(engine)
    yield Repository(engine)
    await engine.dispose()


async def get(health: Health, path: str) -> tuple[int, str, str]:
    """Status, content type and body of GET path."""
    async with TestClient(TestServer(health.app)) as client:
        response = await client.get(path)
        return response.status, response.headers["Content-Type"], await response.text()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text page, keyed by name and sorted labels."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def outcome(page: dict[Any, float], name: str) -> float:
    return page.get(("videobot_requests_total", (("outcome", name),)), 0.0)


async def test_healthz_is_200_with_each_part_when_connected_loaded_and_the_database_answers(repo: Repository):
    status, content_type, body = await get(Health(Client(), Metrics(), repo), "/healthz")

    assert (status, content_type.split(";")[0]) == (200, "application/json")
    assert json.loads(body) == {"status": "ok", "problems": [], **HEALTHY}


@pytest.mark.parametrize("path", ["/healthz", "/metrics", "/no-such-page"])
async def test_health_answers_are_never_sniffed_into_another_type(path: str):
    async with TestClient(TestServer(Health(Client(), Metrics()).app)) as client:
        response = await client.get(path)

    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_a_sqlite_file_deleted_under_the_running_bot_is_a_problem_though_its_connections_answer(
        repo: Repository, tmp_path: Path):
    await repo.get_job(0)  # a pooled connection holds the file open
    for path in tmp_path.glob("bot.db*"):
        path.unlink()  # deleted, or its volume unmounted

    status, _, body = await get(Health(Client(), Metrics(), repo), "/healthz")
    report = json.loads(body)

    assert status == 503 and report["problems"] == [
        f"the database cannot serve: its file {tmp_path / 'bot.db'} is gone (deleted, or its volume unmounted)"]


async def test_a_nearly_full_disk_under_the_database_or_the_videos_is_a_problem_and_a_gauge(tmp_path: Path,
                                                                                            monkeypatch):
    free = {tmp_path / "data": 40 * 10**6, tmp_path / "media": 5 * 10**9}
    for folder in free:
        folder.mkdir()
    monkeypatch.setattr("bot.web.health.shutil.disk_usage", lambda path: SimpleNamespace(free=free[Path(path)]))
    metrics = Metrics()
    folders = {"database": tmp_path / "data", "media": tmp_path / "media" / "not-made-yet"}  # its parent's disk

    status, _, body = await get(Health(Client(), metrics, folders=folders), "/healthz")
    report = json.loads(body)

    assert status == 503 and report["problems"] == [
        f"the disk is almost full: 40.0 MB free for the database ({tmp_path / 'data'}); new videos fail when it is"]
    assert report["disk"] == {"database_free_bytes": 40 * 10**6, "media_free_bytes": 5 * 10**9}
    assert metrics.registry.get_sample_value("videobot_disk_free_bytes", {"folder": "database"}) == 40 * 10**6


async def test_healthz_is_503_and_names_every_part_that_is_down():
    client = Client(service=SimpleNamespace(workers=0, unavailable_reason="the model failed to load (CUDA OOM)",
                                            compile_status=None, stuck=None),
                    ws=None, latency=float("inf"))
    status, _, body = await get(Health(client, Metrics(), DeadRepository()), "/healthz")  # type: ignore[arg-type]
    report = json.loads(body)

    assert status == 503 and report["status"] == "unhealthy"
    assert report["problems"] == ["not connected to the Discord gateway",
                                  "the model is not loaded (the model failed to load (CUDA OOM))",
                                  "the database did not answer (ConnectionRefusedError)"]
    assert report["gateway"] == {"connected": False, "latency_ms": None}  # no heartbeat yet
    assert report["model"] == {"loaded": False, "workers": 0, "error": "the model failed to load (CUDA OOM)"}


class FlakyRepository:
    """A database that stops answering while `down`, and answers again after."""

    def __init__(self) -> None:
        self.down = False

    async def check_file(self) -> None:
        """A server's database: no file to check."""

    async def get_job(self, job_id: int) -> None:
        if self.down:
            raise ConnectionRefusedError("connection refused")


async def test_a_database_down_for_many_probes_is_logged_once_as_it_goes_down_and_once_as_it_comes_back(caplog):
    repo = FlakyRepository()
    health = Health(Client(), Metrics(), repo)  # type: ignore[arg-type]
    caplog.set_level(logging.INFO, logger="bot.web.health")
    async with TestClient(TestServer(health.app)) as client:
        async def probes(count: int) -> list[int]:
            return [(await client.get("/healthz")).status for _ in range(count)]

        healthy = await probes(3)
        repo.down = True
        down = await probes(50)  # a monitor probing every few seconds through an outage
        repo.down = False
        back = await probes(3)
        repo.down = True
        again = await probes(2)

    assert (set(healthy), set(down), set(back), set(again)) == ({200}, {503}, {200}, {503})
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "health: the database did not answer (ConnectionRefusedError): "
                    "ConnectionRefusedError('connection refused')"),
        ("INFO", "health: the database answers again (it was down: the database did not answer "
                 "(ConnectionRefusedError))"),
        ("WARNING", "health: the database did not answer (ConnectionRefusedError): "
                    "ConnectionRefusedError('connection refused')")]


async def test_healthz_says_which_shapes_are_compiled_and_warming_and_a_stuck_worker_is_a_problem():
    shapes = {"compiled": ["1×16×256×256"], "compiling": "4×16×256×256", "waiting": ["1×16×448×256"],
              "failed": [], "compile_s": 61.5}
    service = SimpleNamespace(workers=1, unavailable_reason=None, compile_status=lambda: shapes, stuck=None)
    health = Health(Client(service=service), Metrics())
    status, _, body = await get(health, "/healthz")
    assert status == 200 and json.loads(body)["model"]["shapes"] == shapes

    service.stuck = "a GPU worker has not come back from job 7 1200 s after it started"
    status, _, body = await get(health, "/healthz")
    assert status == 503 and json.loads(body)["problems"] == [service.stuck]


async def test_a_worker_whose_gpu_is_unusable_is_a_problem_naming_the_device_and_the_error():
    lost = ("the GPU worker on cuda:0 is unusable until the bot restarts (AcceleratorError: CUDA error: device-side "
            "assert triggered)")
    service = SimpleNamespace(workers=0, unavailable_reason=None, compile_status=None, stuck=lost)  # its only worker
    status, _, body = await get(Health(Client(service=service), Metrics()), "/healthz")
    report = json.loads(body)

    assert status == 503 and report["problems"] == [lost]
    assert report["model"] == {"loaded": False, "workers": 0, "error": None}


async def test_a_bot_still_logging_in_is_unhealthy_and_says_the_model_loads_after():
    status, _, body = await get(Health(Client(service=None, ready=False), Metrics()), "/healthz")

    assert status == 503 and json.loads(body)["problems"] == [
        "not connected to the Discord gateway", "the model is not loaded (not started: the bot has not logged in to "
        "Discord yet, and loads the model once it has)"]


async def test_metrics_count_requests_by_outcome_and_time_waits_and_videos():
    metrics = Metrics()
    for outcome_name in ("accepted", "accepted", "refused:not_english", "done", "failed"):
        metrics.record_outcome(outcome_name)
    metrics.observe_queue_wait(12.0)
    metrics.observe_generation(3.5)
    metrics.track_queue(lambda: 7, lambda: 1)
    status, content_type, body = await get(Health(Client(), metrics), "/metrics")
    page = samples(body)

    assert status == 200 and content_type.startswith("text/plain")
    assert [outcome(page, o) for o in ("accepted", "refused:not_english", "done", "failed", "cancelled")] == [
        2, 1, 1, 1, 0]
    assert page[("videobot_queue_depth", ())] == 7 and page[("videobot_jobs_running", ())] == 1
    assert page[("videobot_queue_wait_seconds_bucket", (("le", "15.0"),))] == 1
    assert page[("videobot_queue_wait_seconds_bucket", (("le", "5.0"),))] == 0
    assert page[("videobot_generation_seconds_sum", ())] == 3.5
    assert not any(name.startswith("videobot_gpu") for name, _ in page)  # no CUDA here: no GPU memory gauges


async def test_gpu_memory_is_reported_per_device_while_cuda_is_in_use(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", fake_torch(2))
    _, _, body = await get(Health(Client(), Metrics()), "/metrics")
    page = samples(body)

    assert page[("videobot_gpu_memory_allocated_bytes", (("device", "cuda:0"),))] == 1000
    assert page[("videobot_gpu_memory_allocated_bytes", (("device", "cuda:1"),))] == 2000
    assert page[("videobot_gpu_memory_reserved_bytes", (("device", "cuda:1"),))] == 8000


async def fetch(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


@pytest.mark.parametrize(("site", "what"), [("health", "/healthz and /metrics are"), ("gallery", "the gallery is")])
async def test_a_taken_port_is_logged_and_the_bot_runs_on_without_that_site(tmp_path: Path, caplog, site, what):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = settings_for(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", **{f"{site}_enabled": 1,
                                                                                 f"{site}_port": port})
        sites = await start_sites(settings, SimpleNamespace(media=None), None, Health(Client(), Metrics()))  # type: ignore[arg-type]

    assert sites == []
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.getMessage().startswith(f"{what} not served: cannot listen on 127.0.0.1:{port}")
    setting = site.upper()
    assert record.getMessage().endswith(f"; set {setting}_PORT to a free port (or {setting}_HOST to an address of "
                                        f"this host), or {setting}_ENABLED=0")


def test_a_listen_host_that_is_not_this_hosts_stops_the_start_in_one_line_before_any_work(tmp_path: Path):
    database = tmp_path / "data" / "bot.db"
    settings = settings_for(f"sqlite+aiosqlite:///{database}", health_enabled=1, health_host="192.0.2.1")  # TEST-NET-1
    with pytest.raises(SettingsError) as refused:  # python -m bot: the line, exit status 2
        check_environment(settings)

    assert refused.value.lines == [
        "HEALTH_HOST=192.0.2.1 is not an address of this host, so nothing can listen on it; set HEALTH_HOST to an "
        "address of this host, such as 127.0.0.1 (this host only) or 0.0.0.0 (every address), or HEALTH_ENABLED=0"]


def test_a_gallery_host_name_that_does_not_resolve_stops_the_start_in_one_line(tmp_path: Path, monkeypatch):
    def resolve(host: str, *args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")  # no DNS asked: the same every run

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", gallery_enabled=1,
                            gallery_host="gallery.internal")
    with pytest.raises(SettingsError) as refused:
        check_environment(settings)

    assert refused.value.lines == [
        "GALLERY_HOST=gallery.internal: no address has that name (Name or service not known); set GALLERY_HOST to an "
        "address of this host, such as 127.0.0.1 (this host only) or 0.0.0.0 (every address), or GALLERY_ENABLED=0"]
    assert not (tmp_path / "bot.db").exists()


def test_a_port_in_use_at_start_is_no_reason_to_stop_the_start_check():
    """Another process may free it before the site starts (the old container stopping); start_sites logs it if not."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert listen_problem("HEALTH", "127.0.0.1", taken.getsockname()[1]) is None
    assert listen_problem("HEALTH", "localhost", 0) is None


async def ready(fake: FakeDiscord, caplog: pytest.LogCaptureFixture) -> None:
    """Until the bot under `run()` has logged on_ready's "connected as" (its guilds have arrived)."""
    caplog.set_level(logging.INFO)
    with woken_by_logs(fake):
        await fake.wait_for(lambda: any(r.getMessage().startswith("connected as") for r in caplog.records),
                            timeout=WAIT, what="the bot to be ready")


async def test_python_m_bot_serves_healthz_and_metrics_that_follow_the_requests(
    fake_discord: FakeDiscord, tmp_path: Path, monkeypatch, caplog
):
    monkeypatch.setitem(ASPECTS, "tiny", (64, 64))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", health_enabled=1, health_port=port)
    bot = asyncio.create_task(run(settings))
    await ready(fake_discord, caplog)
    health, before = await fetch(f"{url}/healthz"), samples((await fetch(f"{url}/metrics"))[1])
    await (await video(fake_discord, "a paper boat drifting on a pond")).wait_followup(has_video, timeout=WAIT)
    await (await video(fake_discord, "un bateau en papier sur un étang")).wait_answer()
    after = samples((await fetch(f"{url}/metrics"))[1])
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(bot, WAIT)

    report = json.loads(health[1])
    assert health[0] == 200 and report["status"] == "ok"
    no_compiles = {"compiled": [], "compiling": None, "waiting": [], "decoders_waiting": [], "failed": [],
                   "compile_s": 0.0}  # CPU: eager
    assert report["gateway"]["connected"] and report["model"] == {"loaded": True, "workers": 1, "error": None,
                                                                  "shapes": no_compiles}
    assert [outcome(before, o) for o in ("accepted", "done", "refused:not_english")] == [0, 0, 0]
    assert before[("videobot_retention_files_removed_total", (("kind", "video"),))] == 0  # the sweep has started
    assert before[("videobot_retention_rows_deleted_total", (("table", "audit_log"),))] == 0
    assert [outcome(after, o) for o in ("accepted", "done", "refused:not_english")] == [1, 1, 1]
    assert after[("videobot_generation_seconds_count", ())] == after[("videobot_queue_wait_seconds_count", ())] == 1
    assert after[("videobot_queue_depth", ())] == after[("videobot_jobs_running", ())] == 0
    with pytest.raises(aiohttp.ClientConnectionError):
        await fetch(f"{url}/healthz")  # stopped with the bot
