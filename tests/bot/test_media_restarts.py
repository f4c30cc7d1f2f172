"""MEDIA_DIR across an operator's restarts: a new database (or an older backup) beside the media folder of a longer
run, whose job ids start again below the kept videos' own, and a MEDIA_DIR moved while an upscale was queued. Each
test is one such situation, fast and without sleeps."""

from __future__ import annotations

import asyncio
import functools
import os
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import bot.app
from bot.gpu.models import Models
from bot.jobs.upscale import upscale_spec
from bot.media import MediaStore
from storage import Delivery, JobRecord, JobState, Repository, create_engine, migrate
from t2v import load_pipeline
from tests.bot.conftest import Stacks, settings_for
from tests.bot.helpers import WAIT, decoded_frames, has_video, requester, tiny_mp4, video
from tests.fakediscord import FakeDiscord

pytestmark = pytest.mark.usefixtures("logged_errors")

NOW = datetime(2025, 3, 1, 12, 0, 5, tzinfo=UTC)
ASIDE = "orphaned-20250301T120005Z"


async def jobs_made(repo: Repository, count: int) -> list[JobRecord]:
    """`count` refused requests: rows that take job ids, and nothing else."""
    return [await repo.create_job(user_id=1, user_name="bob", channel_id=500, prompt="p", params={},
                                  refusal_reason="quota") for _ in range(count)]


@pytest.fixture
async def repo(tmp_path: Path) -> Any:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'videobot.db'}")
    await migrate(engine)
    yield Repository(engine)
    await engine.dispose()


def files(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()}


async def test_the_videos_of_job_ids_the_database_has_not_had_are_moved_aside_and_a_restart_moves_nothing(
    tmp_path: Path, repo: Repository, caplog: pytest.LogCaptureFixture
) -> None:
    media = tmp_path / "media"
    media.mkdir()
    await jobs_made(repo, 2)  # an older backup, restored: its last job is #2
    kept = ["1.mp4", "1.jpg", "2.mp4", "3.mp4", "3.jpg", "5.jpg", "12.mp4", ".4.mp4.77-x1.part", "07.mp4", "a.txt"]
    for name in kept:
        (media / name).write_bytes(name.encode())
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path / 'videobot.db'}")

    await bot.app.set_aside_others_videos(repo, settings, lambda: NOW)
    said = [(record.levelname, record.getMessage()) for record in caplog.records]
    caplog.clear()
    await bot.app.set_aside_others_videos(repo, settings, lambda: NOW)  # the next start, on the same database

    moved = {f"{ASIDE}/{name}" for name in ("3.mp4", "3.jpg", "5.jpg", "12.mp4")}
    assert files(media) == {"1.mp4", "1.jpg", "2.mp4", ".4.mp4.77-x1.part", "07.mp4", "a.txt"} | moved
    assert all((media / name).read_bytes() == name.split("/")[-1].encode() for name in moved)  # moved, not rewritten
    assert (media / ASIDE).stat().st_mode & 0o777 == 0o755
    assert said == [("WARNING", (
        f"MEDIA_DIR={media} kept 2 videos and 2 poster frames of jobs this database has not had yet (ids above 2, "
        "its last; a new database, or an older backup, beside the media folder of a longer run): moved to "
        f"{media / ASIDE}, so that no new job shows one as its own; nothing was deleted (back on the database they "
        "belong to, move them back)"))]
    assert caplog.records == []


async def test_a_second_set_aside_in_the_same_second_gets_a_folder_of_its_own(tmp_path: Path,
                                                                              repo: Repository) -> None:
    media = tmp_path / "media"
    (media / ASIDE).mkdir(parents=True)
    (media / ASIDE / "1.mp4").write_bytes(b"set aside before")
    (media / "1.mp4").write_bytes(b"another")
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path / 'videobot.db'}")

    await bot.app.set_aside_others_videos(repo, settings, lambda: NOW)

    assert (media / ASIDE / "1.mp4").read_bytes() == b"set aside before"  # never replaced
    assert (media / f"{ASIDE}-2" / "1.mp4").read_bytes() == b"another"


async def test_a_missing_media_dir_moves_nothing_and_an_unreadable_one_is_a_warning_not_a_failed_start(
    tmp_path: Path, repo: Repository, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path / 'videobot.db'}")
    await bot.app.set_aside_others_videos(repo, settings, lambda: NOW)
    assert caplog.records == [] and not (tmp_path / "media").exists()

    def unreadable(path: Any) -> Any:
        raise PermissionError(13, "Permission denied", str(path))

    (tmp_path / "media").mkdir()
    monkeypatch.setattr(os, "scandir", unreadable)
    await bot.app.set_aside_others_videos(repo, settings, lambda: NOW)

    assert [(record.levelname, record.getMessage()) for record in caplog.records] == [("WARNING", (
        f"MEDIA_DIR={tmp_path / 'media'}: could not move aside the videos of jobs this database has not had yet "
        "(Permission denied): a new job may show an older video kept under its id"))]


async def run_until(fake: FakeDiscord, settings: Any, done: Any) -> Any:
    """python -m bot's run until `done(fake)` holds, then a SIGTERM; what `done` gave."""
    running = asyncio.create_task(bot.app.run(settings))
    try:
        found = await fake.wait_for(lambda: done(fake), timeout=WAIT, what="the bot's answer")
    finally:
        os.kill(os.getpid(), signal.SIGTERM)
        assert await asyncio.wait_for(running, WAIT) == 0
    return found


async def test_a_new_database_beside_kept_videos_never_posts_another_job_s_video_as_a_new_job_s(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    fake = fake_discord
    media = tmp_path / "media"
    media.mkdir()
    (media / "1.mp4").write_bytes(tiny_mp4(32))  # someone's job #1 of the database the operator started over from
    (media / "1.jpg").write_bytes(b"its poster")
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path / 'new.db'}")
    await run_until(fake, settings, lambda fake: fake.gateway.connected)  # the new database's first start

    engine = create_engine(settings.database_url)  # bob's job #1 of the new one: done, its post cut short by a
    try:  # stop, and its video not kept (a full disk)
        repo = Repository(engine)
        bob = fake.make_user(name="bob")
        job = await repo.create_job(user_id=bob.id, user_name="bob", channel_id=fake.channel.id, guild_id=fake.guild.id,
                                    prompt="a paper boat", params={"frames": 2, "width": 64, "height": 64, "steps": 3})
        status = fake.seed_message(f"Uploading the video · job #{job.id}")
        await repo.set_status_message(job.id, status.id)
        await repo.mark_running(job.id)
        await repo.mark_done(job.id, seed=5, gpu_s=1.5, output_bytes=100)
    finally:
        await engine.dispose()

    def final(fake: FakeDiscord) -> Any:  # bob's answer, once the status points at it (the delivery's last step)
        told = next((m for m in fake.messages.values() if m.content.startswith(f"<@{bob.id}>")), None)
        return told if told is not None and status.content.endswith(f"/{told.id}") else None

    told = await run_until(fake, settings, final)  # the next start makes the post a stop cut short
    engine = create_engine(settings.database_url)
    try:
        job = await Repository(engine).get_job(1)
    finally:
        await engine.dispose()

    assert not told.attachments, "another job's video was posted as job #1's"
    assert told.content.startswith(f"<@{bob.id}> Sorry, job #1 finished") and "(the video was not kept)" in told.content
    assert job is not None and (job.state, job.delivery) == (JobState.FAILED, Delivery.UNPOSTED)
    [aside] = media.glob("orphaned-*")
    assert (aside / "1.mp4").read_bytes() == tiny_mp4(32) and (aside / "1.jpg").read_bytes() == b"its poster"


@functools.cache
def with_upscaler() -> Models:
    """The tiny model with a tiny upscaler at 128×128."""
    return Models(load_pipeline("tiny-random"), load_pipeline("tiny-random", width=128, height=128))


async def test_a_queued_upscale_reads_its_source_where_media_dir_keeps_it_after_the_operator_moved_it(
    stacks: Stacks, tmp_path: Path
) -> None:
    async with stacks.run(lambda device: with_upscaler(), upscale_model="tiny-random") as stack:
        fake = stack.fake
        bob = fake.make_user(name="bob")
        await (await video(fake, "a paper boat drifting", user=bob, seed=5)).wait_followup(has_video)
        source, model = await stack.job(1), stack.service.model
    engine = create_engine(stacks.db_url)  # ⬆️ Upscale's job, still queued when the bot stopped
    try:
        spec = upscale_spec(source, model, MediaStore(tmp_path / "media").path(1), strength=0.7, cost=2)
        asked = requester(bob.id, channel_id=fake.channel.id, guild_id=fake.guild.id, interaction_token=None)
        await Repository(engine).create_job(**asked.row(spec))
    finally:
        await engine.dispose()
    (tmp_path / "media").rename(tmp_path / "kept")  # the operator moves MEDIA_DIR, and sets it, before the start

    async with stacks.run(lambda device: with_upscaler(), upscale_model="tiny-random",
                          media_dir=tmp_path / "kept") as stack:
        answer = await fake.wait_for_message(lambda m: m.content.startswith(f"<@{bob.id}>") and "job #2" in m.content)
        upscale = await stack.job(2)

    assert upscale.state == JobState.DONE, upscale.error
    assert has_video(answer) and decoded_frames(answer.attachments[0].data) == [(128, 128)] * 2
    assert upscale.params["source_video"] == str(tmp_path / "media" / "1.mp4")  # the row as it was asked
