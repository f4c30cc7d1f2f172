"""/metrics and /healthz as a Prometheus scrape and a load balancer's probe see them: the disk gauges are read at the
scrape, and a HEAD or a query string gets what a GET gets."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from bot.web.health import Health
from bot.web.metrics import Metrics
from tests.bot.web.test_health import Client


def disk_samples(text: str) -> dict[str, float]:
    return {sample.labels["folder"]: sample.value for family in text_string_to_metric_families(text)
            if family.name == "videobot_disk_free_bytes" for sample in family.samples}


async def test_a_scrape_reads_the_free_space_now_without_anyone_asking_healthz(tmp_path: Path, monkeypatch) -> None:
    # under systemd nothing polls /healthz: the gauge was absent, then frozen at whatever the last /healthz read
    free = {"bytes": 5 * 10**9}
    monkeypatch.setattr("bot.web.health.shutil.disk_usage", lambda path: SimpleNamespace(free=free["bytes"]))
    health = Health(Client(), Metrics(), folders={"database": tmp_path, "media": tmp_path / "media"})
    async with TestClient(TestServer(health.app)) as client:
        first = disk_samples(await (await client.get("/metrics")).text())
        free["bytes"] = 40 * 10**6  # the disk fills between two scrapes
        second = disk_samples(await (await client.get("/metrics")).text())
    assert first == {"database": 5e9, "media": 5e9}
    assert second == {"database": 4e7, "media": 4e7}


async def test_head_and_query_strings_answer_as_get_and_other_paths_are_404() -> None:
    health = Health(Client(), Metrics())
    async with TestClient(TestServer(health.app)) as client:
        for path in ("/metrics", "/healthz"):
            assert (await client.head(path)).status == 200
            assert (await client.get(f"{path}?debug=1")).status == 200
            assert (await client.get(f"{path}/")).status == 404
            assert (await client.post(path)).status == 405
