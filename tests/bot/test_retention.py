"""Kept videos older than MEDIA_KEEP_DAYS are removed, except the showcase's; jobs-log and audit rows older than
HISTORY_KEEP_DAYS are deleted, except what is still needed; the bot sweeps at start and hourly."""

from __future__ import annotations

import logging
import os
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from bot.media import MediaStore
from bot.retention import Retention
from bot.web.metrics import Metrics
from storage import utc_now

DAY = 86_400.0
NOW = 1_800_000_000.0


class Showcase:
    """The one query Retention makes of the showcase repository."""

    def __init__(self, kept: set[int]) -> None:
        self.kept = kept

    async def kept_job_ids(self) -> set[int]:
        return set(self.kept)


def kept(media: MediaStore, job_id: int, age_days: float, now: float = NOW) -> Path:
    path = media.root / f"{job_id}.mp4"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x00\x00\x00\x18ftypisom")
    os.utime(path, (now - age_days * DAY, now - age_days * DAY))
    return path


async def test_old_videos_go_and_the_showcase_ones_new_ones_and_other_files_stay(tmp_path):
    media = MediaStore(tmp_path / "media")
    for job_id, age in ((1, 40), (2, 31), (3, 29), (4, 45), (5, 100)):
        kept(media, job_id, age)
    stray = [media.root / name for name in ("notes.txt", "x.mp4", "0.mp4", "01.mp4", "7.part")]
    for path in stray:
        path.write_text("not a kept video")
        os.utime(path, (0, 0))
    retention = Retention(media, Showcase({4, 99}), keep_days=30, clock=lambda: NOW)

    assert await retention.sweep_once() == [1, 2, 5]
    assert [job for job in range(1, 6) if media.has(job)] == [3, 4]  # 29 days old, and the showcase's
    assert all(path.exists() for path in stray)
    assert await retention.sweep_once() == []


async def test_temporary_files_a_crash_left_mid_write_go_after_an_hour_and_a_write_under_way_stays(tmp_path, caplog):
    media = MediaStore(tmp_path / "media")
    kept(media, 7, age_days=1)
    parts = {name: media.root / name for name in (".7-k2j4.part", ".7-x9q1.part", ".8-abcd.part", ".9-live.part")}
    for name, age_s in ((".7-k2j4.part", 90 * DAY), (".7-x9q1.part", 3601), (".8-abcd.part", 2 * DAY),
                        (".9-live.part", 3599)):  # the last: a write still under way
        parts[name].write_bytes(b"\x00\x00\x00\x18ftyp half a vid")
        os.utime(parts[name], (NOW - age_s, NOW - age_s))
    retention = Retention(media, Showcase(set()), keep_days=30, clock=lambda: NOW)

    with caplog.at_level(logging.INFO, logger="bot.media"):
        assert await retention.sweep_once() == []  # no kept video was old enough; job ids only count videos

    assert sorted(path.name for path in media.root.iterdir()) == [".9-live.part", "7.mp4"]
    assert ("removed 3 unfinished temporary files left by interrupted writes (.7-k2j4.part, .7-x9q1.part, "
            ".8-abcd.part)") in caplog.messages


def poster(media: MediaStore, job_id: int, age_s: float) -> Path:
    path = media.poster_path(job_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8 a poster")
    os.utime(path, (NOW - age_s, NOW - age_s))
    return path


async def test_a_removed_video_takes_its_poster_and_a_kept_one_keeps_it(tmp_path):
    media = MediaStore(tmp_path / "media")
    for job_id, age in ((1, 40), (2, 1), (3, 40)):
        kept(media, job_id, age)
        poster(media, job_id, age * DAY)
    retention = Retention(media, Showcase({3}), keep_days=30, clock=lambda: NOW)

    assert await retention.sweep_once() == [1]
    assert [job for job in (1, 2, 3) if media.poster_path(job).exists()] == [2, 3]


@pytest.mark.parametrize("keep_days", [30, 0])  # whatever MEDIA_KEEP_DAYS keeps: there is no video to keep
async def test_a_poster_whose_video_is_gone_goes_and_one_whose_video_is_kept_stays(tmp_path, caplog, keep_days):
    media = MediaStore(tmp_path / "media")
    kept(media, 2, age_days=400 if keep_days == 0 else 1)
    with_video = poster(media, 2, age_s=400 * DAY)  # older than its video (made again since): its video is there
    orphans = [poster(media, 8, age_s=2 * DAY), poster(media, 9, age_s=3601)]  # a crash between `delete`'s unlinks
    fresh = poster(media, 10, age_s=60)  # without its video for a minute only: never a sweep's to judge mid-write
    strays = [media.root / name for name in ("logo.jpg", "0.jpg", "007.jpg")]  # not a job's poster
    for path in strays:
        path.write_bytes(b"\xff\xd8")
        os.utime(path, (0, 0))
    retention = Retention(media, Showcase(set()), keep_days=keep_days, clock=lambda: NOW)

    with caplog.at_level(logging.INFO, logger="bot.media"):
        assert await retention.sweep_once() == []  # job ids count videos only

    assert not any(path.exists() for path in orphans)
    assert with_video.exists() and media.has(2) and fresh.exists() and all(path.exists() for path in strays)
    assert "removed 2 poster frames whose videos were gone (8, 9)" in caplog.messages


class Log:
    """A jobs log or an audit log whose pruning deletes `rows` rows."""

    def __init__(self, rows: int) -> None:
        self.rows = rows

    async def prune_jobs(self, before: datetime) -> int:
        return self.rows

    async def prune_audit(self, before: datetime, *, keep: object) -> int:
        return self.rows


async def test_what_the_sweeps_remove_is_counted_at_metrics(tmp_path):
    media, metrics = MediaStore(tmp_path / "media"), Metrics()
    for job_id, age in ((1, 40), (2, 40), (3, 1)):
        kept(media, job_id, age)
    poster(media, 1, age_s=40 * DAY)
    poster(media, 9, age_s=2 * DAY)  # its video is gone
    retention = Retention(media, Showcase(set()), keep_days=30, jobs=Log(3), audit=Log(2),  # type: ignore[arg-type]
                          history_keep_days=365, clock=lambda: NOW)
    metrics.track_retention(lambda: retention.removed)

    def counted() -> list[float | None]:
        sample = metrics.registry.get_sample_value
        return [sample("videobot_retention_rows_deleted_total", {"table": table}) for table in ("jobs", "audit_log")] \
            + [sample("videobot_retention_files_removed_total", {"kind": kind}) for kind in ("video", "poster")]

    assert counted() == [0, 0, 0, 0]
    assert await retention.sweep_once() == [1, 2] and await retention.prune_once() == (3, 2)
    assert counted() == [3, 2, 2, 2]  # videos 1 and 2; the posters of 1 and of 9
    await retention.sweep_once()
    await retention.prune_once()
    assert counted() == [6, 4, 2, 2]  # totals since the start: nothing more on disk, the fake logs delete again


async def test_a_missing_media_directory_is_nothing_to_sweep(tmp_path):
    retention = Retention(MediaStore(tmp_path / "never-made"), Showcase(set()), keep_days=1, clock=lambda: NOW)
    assert await retention.sweep_once() == []


async def test_keep_days_0_keeps_videos_forever_but_not_the_leftovers_of_cut_short_writes(tmp_path):
    media = MediaStore(tmp_path / "media")
    kept(media, 1, age_days=3000)
    part = media.root / ".2-abcd.part"
    part.write_bytes(b"half")
    os.utime(part, (NOW - 2 * DAY, NOW - 2 * DAY))
    retention = Retention(media, Showcase(set()), keep_days=0, clock=lambda: NOW)

    assert await retention.sweep_once() == [] and media.has(1) and not part.exists()
    assert await retention.prune_once() == (0, 0)  # no history to prune without HISTORY_KEEP_DAYS


def test_a_negative_keep_is_refused_with_the_way_to_keep_forever(tmp_path):
    with pytest.raises(ValueError, match=r"keep_days=-1, history_keep_days=0: each must be 0 \(keep forever\)"):
        Retention(MediaStore(tmp_path), Showcase(set()), keep_days=-1)


async def test_the_bot_removes_old_kept_videos_when_it_starts_if_media_keep_days_is_set(stacks, scripted):
    async with stacks.run(lambda device: scripted, media_keep_days=0) as stack:
        media = stack.bot.media
        old, recent = kept(media, 1, age_days=8, now=time.time()), kept(media, 2, age_days=0, now=time.time())
    assert old.exists()  # MEDIA_KEEP_DAYS=0 keeps them forever
    async with stacks.run(lambda device: scripted, media_keep_days=7) as stack:
        assert stack.bot.retention is not None and stack.bot.retention.keep_days == 7
    assert not old.exists() and recent.exists()


async def test_the_bot_deletes_jobs_and_audit_rows_older_than_history_keep_days_when_it_starts(stacks, scripted):
    async with stacks.run(lambda device: scripted, history_keep_days=0) as stack:
        repo, audit, now = stack.repo, stack.moderation.repo, utc_now()
        for age in (400, 300):
            await repo.create_job(user_id=1, user_name="old", channel_id=1, prompt="a cat", params={},
                                  refusal_reason="not_english", now=now - timedelta(days=age))
            await audit.audit(2, "block", "user:1", guild_id=3, now=now - timedelta(days=age))
        removed = await audit.audit(2, "denylist.remove", "pattern:gore", guild_id=3, now=now - timedelta(days=900))
        await audit.audit(2, "block", "user:1", guild_id=3, now=now)  # the newest row
    async with stacks.run(lambda device: scripted, history_keep_days=365) as stack:
        assert stack.bot.retention is not None and stack.bot.retention.history_keep_days == 365
        await stack.bot.retention.pruned.wait()
        jobs = await stack.repo.list_jobs()
        rows = await stack.moderation.repo.latest_audit(guild_id=3)

    assert [job.id for job in jobs] == [2] and len(rows) == 3  # a year's rows, and the removal each start reads
    assert removed in rows
