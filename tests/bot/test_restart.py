"""The real `python -m bot` process on the fake Discord: killed with SIGKILL mid-generation, restarted, and stopped
with SIGTERM. Jobs are kept in order, retried once, refunded with a message, and never lost or duplicated.

The children run the tiny random model on the CPU, which may take anything from milliseconds to seconds a step. To
catch a job mid-flight whatever the speed, the fake holds its first progress edit ("Rendering ▰▱… n%", or
"Encoding the video" once every step is done) unanswered until the test lets it go (`FakeDiscord.hold_next`): the
service records a job's outcome only after its last progress edit has gone out, so the job stays `running` in the
database, and the bot is killed (or stopped) there. No timer opens a hold, so however loaded the machine, what the
test does meanwhile comes first. Nothing sleeps: every wait is on the fake's traffic or on the child's log lines.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from storage import JobRecord, JobState, Repository, create_engine
from tests.bot.helpers import START_S, child_env, contents, has_video, write_lora
from tests.fakediscord import FakeDiscord, FakeMessage, FakeUser, Hold, InteractionHandle

RENDER_S = 60.0
SIZE = {"steps": 4, "frames": 2}


class Child:
    """One `python -m bot` process; its log lines wake the fake's waiters, and are shown when a test fails."""

    def __init__(self, fake: FakeDiscord, env: dict[str, str], cwd: Path, name: str) -> None:
        self.fake, self.env, self.cwd, self.name = fake, env, cwd, name
        self.lines: list[str] = []
        self.process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> Child:
        """Start it and wait until it is connected with its commands synced."""
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", cwd=self.cwd, env=self.env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        self._reader = asyncio.create_task(self._read())
        await self.fake.wait_for(lambda: self.says("connected as") or self.exited(), timeout=START_S,
                                 what=f"{self.name} to connect")
        assert not self.exited(), f"{self.name} exited with {self.process.returncode}"
        return self

    async def _read(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        async for line in self.process.stderr:
            self.lines.append(line.decode(errors="replace").rstrip())
            self.fake.notify()
        await self.process.wait()
        self.fake.notify()

    def says(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def exited(self) -> bool:
        return self.process is not None and self.process.returncode is not None

    def errors(self) -> list[str]:
        return [line for line in self.lines if " ERROR " in line or " CRITICAL " in line]

    async def kill(self) -> None:
        """SIGKILL: no handler, no cleanup, as in a power cut or the OOM killer."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        await self.stopped()

    async def terminate(self) -> int:
        """SIGTERM (docker stop, systemctl stop); returns the exit code."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGTERM)
        return await self.stopped()

    async def stopped(self) -> int:
        assert self.process is not None and self._reader is not None
        await asyncio.wait_for(asyncio.shield(self._reader), RENDER_S)
        return self.process.returncode  # type: ignore[return-value]


@pytest.fixture
async def children(fake_discord: FakeDiscord, tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """Start children on one database and the fake; leftovers are killed, and every child's log is printed."""
    made: list[Child] = []
    base = {
        "DISCORD_TOKEN": fake_discord.token, "DISCORD_API_BASE": fake_discord.api_url,
        "DISCORD_GATEWAY_URL": fake_discord.gateway_url, "DISCORD_GUILD_ID": str(fake_discord.guild.id),
        "T2V_MODEL": "tiny-random", "T2V_ALLOW_TINY": "1", "T2V_DEVICE": "cpu",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", "MEDIA_DIR": str(tmp_path / "media"),
        "STATUS_EDIT_INTERVAL_S": "1", "LOG_LEVEL": "INFO", "HEALTH_ENABLED": "0",
    }

    async def start(**settings: Any) -> Child:
        env = child_env(**{**base, **{name.upper(): str(value) for name, value in settings.items()}})
        made.append(Child(fake_discord, env, tmp_path, f"bot #{len(made) + 1}"))
        return await made[-1].start()

    yield start
    for child in made:
        if not child.exited():
            await child.kill()
        print(f"--- {child.name} (exit {child.process.returncode if child.process else None}) ---")
        print("\n".join(child.lines))


async def jobs_in(tmp_path: Path) -> list[JobRecord]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    try:
        return await Repository(engine).list_jobs()
    finally:
        await engine.dispose()


async def video(fake: FakeDiscord, user: FakeUser, prompt: str, **size: int) -> InteractionHandle:
    return await fake.slash("video", {"prompt": prompt, **SIZE, **size}, user=user)


async def edited(handle: InteractionHandle, prefix: str, *, after: int = 0, timeout: float = RENDER_S) -> FakeMessage:
    """The status message once an edit made after its first `after` contents starts with `prefix`."""
    return await handle.wait_original(
        lambda m: m.content.startswith(prefix) and any(t.startswith(prefix) for t in contents(m)[after:]), timeout)


def hold_next_edit(handle: InteractionHandle) -> Hold:
    """Leave the job's next status edit unanswered until the test sets the returned hold (a hold still on when the
    fake closes is let go then); until then the job's outcome cannot be recorded."""
    return handle.fake.hold_next(f"PATCH /webhooks/{handle.fake.app_id}/{handle.record.token}/messages/@original")


async def held(handle: InteractionHandle, hold: Hold) -> str:
    """The text of the status edit `hold` caught, once the bot sent it."""
    request = await handle.fake.wait_held(hold, timeout=RENDER_S)
    return str(request.json["content"])


async def held_at_progress(handle: InteractionHandle) -> str:
    """Once the job has started, hold its next edit, its first progress ("Rendering …" or "Encoding …"), and
    return that text."""
    await edited(handle, "Starting")
    return await held(handle, hold_next_edit(handle))


async def test_kill_9_mid_job_then_a_restart_serves_every_job_once_in_their_fair_order(children, tmp_path: Path):
    first = await children()
    fake = first.fake
    alice, bob = fake.make_user(name="alice"), fake.make_user(name="bob")
    running = await video(fake, alice, "a red fox running through snow")
    progress = await held_at_progress(running)
    queued = []
    for user, prompt in [(bob, "a blue whale swimming"), (alice, "a red fox asleep"), (bob, "a blue whale singing"),
                         (alice, "a red fox hunting")]:
        queued.append(await video(fake, user, prompt))
        await edited(queued[-1], "Queued")
        hold_next_edit(queued[-1])  # a job the worker takes before the kill stays running, never done: see below
    await first.kill()
    fake.forget_faults()  # the holds no edit met before the kill would stall the next process's edits
    crashed = await jobs_in(tmp_path)

    second = await children()
    results = [await handle.wait_followup(has_video, RENDER_S) for handle in [running, *queued]]
    assert await second.terminate() == 0
    jobs = await jobs_in(tmp_path)

    assert progress.startswith(("Rendering ", "Encoding the video"))
    # The first job was rendering when the process died; the next ones may have started too, in their order (the
    # worker takes the next job while the one before is encoded and its outcome waits for the held edit; how many it
    # took before the kill depends on the machine's load), the rest were queued. None of them finished: each one's
    # next edit after "Queued" was held too, and a job's outcome is recorded only once its edits have gone out (on a
    # loaded machine one of them used to finish before the kill and run before the first job's retry).
    ran = [job.state == JobState.RUNNING for job in crashed]
    assert ran[0] and ran == sorted(ran, reverse=True)
    assert [(job.state, job.attempts) for job in crashed] == [(JobState.RUNNING, 1) if r else (JobState.QUEUED, 0)
                                                              for r in ran]
    assert len(jobs) == 5 and len({job.interaction_token for job in jobs}) == 5  # one row per request
    assert [job.state for job in jobs] == [JobState.DONE] * 5
    served = sorted(jobs, key=lambda job: job.started_at)
    assert [job.prompt for job in served] == ["a red fox running through snow", "a blue whale swimming",
                                              "a red fox asleep", "a blue whale singing", "a red fox hunting"]
    assert [job.attempts for job in jobs] == [2 if r else 1 for r in ran]  # the interrupted ones ran again, once
    assert all(r.attachments[0].content_type == "video/mp4" for r in results)
    assert first.errors() == [] and second.errors() == []


async def test_a_job_interrupted_twice_fails_with_a_message_and_is_not_charged(children, tmp_path: Path):
    first = await children(quota_default=1)  # one video a day: the dropped one must not use it up
    fake = first.fake
    alice = fake.make_user(name="alice")
    handle = await video(fake, alice, "a lighthouse in a storm")
    await held_at_progress(handle)
    await first.kill()

    retry = hold_next_edit(handle)  # the retry starts before the child is even connected: hold it from the start
    second = await children(quota_default=1)
    assert (await held(handle, retry)).startswith("Starting")  # the retry, caught in flight too
    await second.kill()

    third = await children(quota_default=1)
    dropped = await edited(handle, "Sorry")
    again = await video(fake, alice, "a lighthouse on a calm night")
    result = await again.wait_followup(has_video, RENDER_S)
    assert await third.terminate() == 0
    jobs = await jobs_in(tmp_path)

    assert dropped.content == ("Sorry, job #1 was interrupted twice by bot restarts and was dropped. "
                               "Nothing was charged.")
    assert [(job.state, job.attempts, job.error) for job in jobs] == [(JobState.FAILED, 2, "interrupted twice"),
                                                                       (JobState.DONE, 1, None)]
    assert result.attachments and not result.ephemeral  # accepted: the quota of 1 was still free
    assert third.says("interrupted twice; giving up on it")


async def test_sigterm_refuses_new_videos_finishes_the_running_one_keeps_the_queue_and_exits_0(children,
                                                                                              tmp_path: Path):
    child = await children()  # SHUTDOWN_GRACE_S=60: up to 50 s to finish, then stop at the next step
    fake = child.fake
    alice, bob, carol = fake.make_user(name="alice"), fake.make_user(name="bob"), fake.make_user(name="carol")
    running = await video(fake, alice, "a paper boat on a river", steps=30)  # likely still denoising at the SIGTERM
    await edited(running, "Starting")
    progress = hold_next_edit(running)  # the job cannot end before the test lets its first progress edit through
    waiting = await video(fake, bob, "a paper plane over a city")
    await edited(waiting, "Queued")
    await held(running, progress)

    assert child.process is not None
    os.kill(child.process.pid, signal.SIGTERM)
    await fake.wait_for(lambda: child.says("letting 1 running jobs finish"), what="the child to stop taking jobs")
    refused = await (await video(fake, carol, "a paper crane in the wind")).wait_answer()
    progress.set()  # carol is answered while the job still runs: now it may finish
    result = await running.wait_followup(has_video, RENDER_S)
    code = await child.stopped()
    jobs = await jobs_in(tmp_path)

    assert code == 0
    assert refused.ephemeral and "shutting down" in refused.content
    assert result.attachments[0].content_type == "video/mp4"
    assert [(job.state, job.attempts) for job in jobs] == [(JobState.DONE, 1), (JobState.QUEUED, 0),
                                                           (JobState.REFUSED, 0)]
    assert contents(waiting.original)[-1].startswith("Queued")  # it runs after the next start
    assert child.errors() == []


async def test_a_styled_job_queued_at_a_kill_renders_in_its_style_after_the_restart(children, tmp_path: Path):
    from t2v import TINY_RANDOM, load_pipeline

    write_lora(tmp_path / "clay.safetensors", load_pipeline(TINY_RANDOM).config)
    styles = tmp_path / "styles.toml"
    styles.write_text('[claymation]\nfile = "clay.safetensors"\nscale = 0.8\nprefix = "claymation style, "\n'
                      'description = "Clay figures"\n')
    first = await children(styles_file=styles)
    fake = first.fake
    alice, bob = fake.make_user(name="alice"), fake.make_user(name="bob")
    running = await video(fake, alice, "a red fox running through snow")
    await held_at_progress(running)
    queued = await fake.slash("video", {"prompt": "a blue whale swimming", "style": "claymation", **SIZE}, user=bob)
    await edited(queued, "Queued")
    hold_next_edit(queued)  # taken before the kill, it stays running, to be rendered (styled) by the next process
    await first.kill()
    fake.forget_faults()

    second = await children(styles_file=styles)
    result = await queued.wait_followup(has_video, RENDER_S)
    await running.wait_followup(has_video, RENDER_S)
    assert await second.terminate() == 0
    job = next(job for job in await jobs_in(tmp_path) if job.user_id == bob.id)

    assert (job.state, job.prompt, job.params["style"]) == (JobState.DONE, "a blue whale swimming", "claymation")
    assert "style `claymation`" in result.content and "> a blue whale swimming" in result.content
    assert second.says("styles loaded: claymation") and second.says("style claymation (scale 0.8, fused) applied")
    assert first.errors() == [] and second.errors() == []
