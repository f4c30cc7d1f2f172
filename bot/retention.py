"""What the bot keeps, and for how long: every SWEEP_EVERY_S (and once at start),

- the kept MP4s written more than MEDIA_KEEP_DAYS days ago are removed, except those the showcase still needs
  (nominated or approved); a removed video can no longer be upscaled, and ⭐ Showcase takes the copy from the Discord
  message again when someone nominates it later. What a crash left behind (PART_MAX_AGE_S old) goes whatever the
  setting: the temporary files of writes it cut short, and the posters whose video is gone;
- the jobs log's rows and the audit log's rows older than HISTORY_KEEP_DAYS days are deleted (storage's
  `prune_jobs`, `prune_audit`), except jobs still queued or running, a video whose post is pending, and jobs in the
  showcase, and the audit rows of denylist removals (each start reads them, not to add a removed shipped entry
  again). Quotas count the current period only, so they never need more; /videomod stats and the audit answers
  then reach back that far.

What each sweep removed is added to `Retention.removed`, which /metrics reads (bot.web.metrics).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bot.media import PART_MAX_AGE_S, MediaStore
from bot.moderation.denylist_edits import REMOVALS
from bot.tasks import stop_task
from storage import ModerationRepository, Repository, ShowcaseRepository

log = logging.getLogger(__name__)

SWEEP_EVERY_S = 3600.0  # how often old videos and rows are looked for
DAY_S = 86_400
HISTORY_TABLES = ("jobs", "audit_log")  # the tables HISTORY_KEEP_DAYS prunes
MEDIA_KINDS = ("video", "poster")  # the kept files the media sweep removes


@dataclass
class Removed:
    """What the sweeps removed since the bot started: rows by table, files by kind (each key from the start)."""

    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(HISTORY_TABLES, 0))
    files: dict[str, int] = field(default_factory=lambda: dict.fromkeys(MEDIA_KINDS, 0))


class Retention:
    """The sweeps above, from `start()` until `stop()`; a keep of 0 days keeps that kind forever."""

    def __init__(self, media: MediaStore, showcase: ShowcaseRepository, keep_days: int, *,
                 jobs: Repository | None = None, audit: ModerationRepository | None = None, history_keep_days: int = 0,
                 clock: Callable[[], float] = time.time) -> None:
        if keep_days < 0 or history_keep_days < 0:
            raise ValueError(f"keep_days={keep_days}, history_keep_days={history_keep_days}: each must be 0 (keep "
                             "forever) or more")
        self.media, self.showcase, self.keep_days, self._clock = media, showcase, keep_days, clock
        self.jobs, self.audit, self.history_keep_days = jobs, audit, history_keep_days
        self.removed = Removed()
        self.pruned = asyncio.Event()  # set once the first pruning after `start()` has ended
        self._task: asyncio.Task[None] | None = None

    async def sweep_once(self) -> list[int]:
        """One sweep of the media directory now; the job ids whose videos were removed."""
        now = self._clock()
        keep = await self.showcase.kept_job_ids() if self.keep_days else set()
        older_than = now - self.keep_days * DAY_S if self.keep_days else float("-inf")
        swept = await self.media.sweep(older_than, keep, leftovers_before=now - PART_MAX_AGE_S)
        self.removed.files["video"] += len(swept.videos)
        self.removed.files["poster"] += len(swept.posters)
        return swept.videos

    async def prune_once(self) -> tuple[int, int]:
        """One pruning of the jobs log and the audit log now (those given); the numbers of rows deleted from each."""
        if not self.history_keep_days:
            return 0, 0
        before = datetime.fromtimestamp(self._clock(), UTC) - timedelta(days=self.history_keep_days)
        jobs = 0 if self.jobs is None else await self.jobs.prune_jobs(before)
        audit = 0 if self.audit is None else await self.audit.prune_audit(before, keep=REMOVALS)
        self.removed.rows["jobs"] += jobs
        self.removed.rows["audit_log"] += audit
        if jobs or audit:
            log.info("deleted %d jobs-log rows and %d audit rows older than %d days (HISTORY_KEEP_DAYS; 0 keeps every "
                     "row)", jobs, audit, self.history_keep_days)
        return jobs, audit

    async def start(self) -> None:
        """Sweep the media directory now (a directory listing: quick); prune the logs in the background from now on
        (the first pruning after an upgrade may delete a year's rows), and both every SWEEP_EVERY_S until `stop()`."""
        await self._media_logged()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="retention")

    async def stop(self) -> None:
        """Stop sweeping."""
        await stop_task(self._task)
        self._task = None

    async def _run(self) -> None:
        await self._prune_logged()
        self.pruned.set()
        while True:
            await asyncio.sleep(SWEEP_EVERY_S)
            await self._media_logged()
            await self._prune_logged()

    async def _media_logged(self) -> None:
        """A sweep whose failure is logged, never raised: the next one tries again."""
        try:
            await self.sweep_once()
        except Exception:
            log.exception("sweeping old videos from %s failed; trying again later", self.media.root)

    async def _prune_logged(self) -> None:
        try:
            await self.prune_once()
        except Exception:
            log.exception("deleting old rows from the jobs and audit logs failed; trying again later")
