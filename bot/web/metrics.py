"""Prometheus metrics of the video service: requests by outcome, queue depth, queue wait, generation time, GPU memory,
what the retention sweep removed.

Discord-free: the service records outcomes and timings here, `bot.web.health` serves `render()` at `/metrics`. Each
`Metrics` has its own registry, so several services (tests, restarts in one process) never collide.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

log = logging.getLogger(__name__)

PREFIX = "videobot"
OUTCOMES = ("accepted", "done", "failed", "cancelled")  # shown from the start; refusals appear as refused:<reason>
WAIT_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600)  # seconds from accepted to started
GENERATION_BUCKETS = (1, 2.5, 5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600)  # the pipeline's own total per video


class Metrics:
    """The bot's metrics and the registry they are exposed from."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(f"{PREFIX}_requests", "Video requests by outcome: accepted, refused:<reason>, done, "
                                "failed, cancelled (a request counts once when accepted, once when it ends)",
                                ["outcome"], registry=self.registry)
        for outcome in OUTCOMES:
            self.requests.labels(outcome)
        self.queue_depth = Gauge(f"{PREFIX}_queue_depth", "Jobs waiting for a GPU", registry=self.registry)
        self.running = Gauge(f"{PREFIX}_jobs_running", "Jobs on a GPU now", registry=self.registry)
        self.disk_free = Gauge(f"{PREFIX}_disk_free_bytes", "Free space on the disk of what the bot keeps, read at "
                               "each scrape and /healthz", ["folder"], registry=self.registry)
        self.queue_wait = Histogram(f"{PREFIX}_queue_wait_seconds", "Time from accepting a job to starting it",
                                    buckets=WAIT_BUCKETS, registry=self.registry)
        self.generation = Histogram(f"{PREFIX}_generation_seconds", "GPU time of each finished video",
                                    buckets=GENERATION_BUCKETS, registry=self.registry)
        self.registry.register(GPUMemory())

    def record_outcome(self, outcome: str) -> None:
        """Count a request as accepted, refused:<reason>, done, failed or cancelled."""
        self.requests.labels(outcome).inc()

    def observe_queue_wait(self, seconds: float) -> None:
        """A job started after waiting this long."""
        self.queue_wait.observe(max(seconds, 0.0))

    def observe_generation(self, seconds: float) -> None:
        """A video finished after this much GPU time."""
        self.generation.observe(max(seconds, 0.0))

    def track_queue(self, queued: Callable[[], int], running: Callable[[], int]) -> None:
        """Read the queue depth and the running jobs from these callables whenever metrics are collected."""
        self.queue_depth.set_function(queued)
        self.running.set_function(running)

    def track_retention(self, removed: Callable[[], Removals | None]) -> None:
        """Read what the retention sweep removed (bot.retention's `Retention.removed`; None before it starts) from
        this callable whenever metrics are collected."""
        self.registry.register(RetentionTotals(removed))

    def count(self, outcome: str) -> float:
        """The requests counted with this outcome so far (for tests and /healthz)."""
        return self.registry.get_sample_value(f"{PREFIX}_requests_total", {"outcome": outcome}) or 0.0

    def render(self) -> tuple[bytes, str]:
        """The metrics in Prometheus' text format, and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class GPUMemory:
    """Memory PyTorch holds on each GPU; absent when CUDA is not in use.

    Reads the caching allocator's host-side counters: no kernel, no synchronisation, so the event loop may call it.
    """

    def describe(self) -> list[Metric]:
        """Nothing to declare up front: the families exist only while CUDA is in use."""
        return []

    def collect(self) -> Iterator[Metric]:
        """`videobot_gpu_memory_allocated_bytes` and `..._reserved_bytes`, labelled by device."""
        torch = sys.modules.get("torch")  # never imported here: without the engine loaded there is nothing to read
        if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
            return
        allocated = GaugeMetricFamily(f"{PREFIX}_gpu_memory_allocated_bytes", "GPU memory held by tensors",
                                      labels=["device"])
        reserved = GaugeMetricFamily(f"{PREFIX}_gpu_memory_reserved_bytes", "GPU memory held by PyTorch's caching "
                                     "allocator", labels=["device"])
        for index in range(torch.cuda.device_count()):
            allocated.add_metric([f"cuda:{index}"], torch.cuda.memory_allocated(index))
            reserved.add_metric([f"cuda:{index}"], torch.cuda.memory_reserved(index))
        yield allocated
        yield reserved


class Removals(Protocol):
    """What the retention sweep removed since the bot started (bot.retention.Removed)."""

    @property
    def rows(self) -> Mapping[str, int]: ...  # history rows deleted (HISTORY_KEEP_DAYS), by table

    @property
    def files(self) -> Mapping[str, int]: ...  # kept media files removed, by kind: video, poster


class RetentionTotals:
    """`videobot_retention_rows_deleted_total{table}` and `videobot_retention_files_removed_total{kind}`, read from
    the retention sweep's own totals; absent until the sweep has started."""

    def __init__(self, removed: Callable[[], Removals | None]) -> None:
        self._removed = removed

    def describe(self) -> list[Metric]:
        """Nothing to declare up front: the families exist once the sweep has started."""
        return []

    def collect(self) -> Iterator[Metric]:
        """The two counter families, one sample per table and per kind."""
        removed = self._removed()
        if removed is None:
            return
        rows = CounterMetricFamily(f"{PREFIX}_retention_rows_deleted", "Rows of the jobs log and the audit log the "
                                   "retention deleted (HISTORY_KEEP_DAYS), by table", labels=["table"])
        files = CounterMetricFamily(f"{PREFIX}_retention_files_removed", "Kept media files the retention sweep "
                                    "removed (old videos with their posters, posters whose video was gone), by kind",
                                    labels=["kind"])
        for table, count in removed.rows.items():
            rows.add_metric([table], count)
        for kind, count in removed.files.items():
            files.add_metric([kind], count)
        yield rows
        yield files
