"""Posts still pending (storage's `jobs.delivery`): those the last process's end cut short (a kill, a crash, a shutdown
past its grace), made at a start, and those Discord failed (a 5xx, a lost connection), tried again in this process.

Discord may have taken an upload whose answer never came back, so each public job's channel is looked through first
(the messages from just before its job was done, for the bot's own post of the job's MP4): found, its id is recorded
and the status points at it, never a second post. Not found, a public video kept in the media directory is posted
now, as any result is, with a note that it is late. Any other — a private video (never kept), a public one no longer
kept, one whose channel cannot be read — fails, not charged, and its requester is told in a few words. The
requester's DMs are looked through too: a private video past its token, and a public one where the bot may not post
in the channel, went there.

A post Discord failed is tried so after each of RETRY_AFTER_S (its requester told when, by bot.ui.delivery); after
the last, it is looked for once more, and not found its job fails, not charged. One still waiting when the bot closes
is left pending for the next start.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import discord

from bot.characters import counted
from bot.jobs.events import Delivered
from bot.media import MediaStore
from bot.tasks import stop_task
from bot.ui.delivery import Delivery
from bot.ui.queue_board import Sleep
from storage import Delivery as Posting
from storage import JobRecord, Repository

log = logging.getLogger(__name__)

LOOK_BACK = 500  # messages searched for the post a stop cut short, from just before the job was done
CLOCKS_APART = timedelta(minutes=10)  # this host's clock may be this far ahead of Discord's
RETRY_AFTER_S = (60.0, 300.0, 900.0)  # the waits before each new try of a post Discord failed: 1, then 5, then 15 min


@dataclass(frozen=True)
class Cause:
    """Why a post is pending, in the words of its late note, of its requester's apology and of the log."""

    note: str  # on the video, posted late
    apology: str  # "Sorry, job #n finished, but {apology} (why it cannot be posted)"
    logged: str  # "job n: its video's post {logged}"
    retried: bool = False  # tried in this process: its failures are quiet, and a 5xx while looking waits a try


RESTART = Cause("posted late: the bot restarted while it was posting this video",
                "the bot restarted while it was sending the video", "was cut short by the last stop")
DISCORD_FAILED = Cause("posted late: Discord failed while this video was being posted",
                       "Discord failed while the bot was sending the video", "failed on Discord's side", retried=True)


class LatePosts:
    """Finds, makes or gives up on each pending post, through the bot's delivery: at a start, and in this process
    after Discord failed one (`retry_later`)."""

    def __init__(self, bot: discord.Client, repo: Repository, delivery: Delivery, media: MediaStore | None,
                 now: Callable[[], datetime], *, sleep: Sleep = asyncio.sleep) -> None:
        self._bot, self._repo, self._delivery, self._media, self._now = bot, repo, delivery, media, now
        self.sleep = sleep  # the waits between tries (a timer the test fires, in tests)
        self._retries: dict[int, asyncio.Task[None]] = {}  # job id → its tries, while they go on
        self._closed = False

    async def post(self) -> None:
        """Each post the last stop cut short, oldest job first; a failure is logged and the next is tried."""
        for job in await self._repo.undelivered():
            try:
                await self._settle(job, RESTART)
            except Exception:
                log.exception("job %d: posting its video after the restart failed", job.id)

    def retry_later(self, job: JobRecord) -> str | None:
        """Try a post Discord failed again after each of RETRY_AFTER_S; when the first try is, in words ("in 1
        minute"), or None when none was set (tries for it already go on, or the bot is closing: the next start's)."""
        if self._closed or job.id in self._retries:
            return None
        self._retries[job.id] = asyncio.create_task(self._retry(job.id), name=f"videobot-late-post-{job.id}")
        return f"in {counted(round(RETRY_AFTER_S[0] / 60), 'minute')}"

    async def close(self) -> None:
        """Stop the tries: a post still pending is left for the next start."""
        self._closed = True
        for task in list(self._retries.values()):
            await stop_task(task)

    async def _retry(self, job_id: int) -> None:
        """The tries of one post Discord failed (each looks for it, then posts it), then the last look."""
        try:
            for wait in RETRY_AFTER_S:
                await self.sleep(wait)
                if not await self._try(job_id):
                    return
            await self._try(job_id, post=False)  # right after the last try: found, or given up on
        except Exception:
            log.exception("job %d: trying its video's post again failed; the next start tries again", job_id)
        finally:
            self._retries.pop(job_id, None)

    async def _try(self, job_id: int, *, post: bool = True) -> bool:
        """One try of a post Discord failed, unless it is no longer pending (posted, found or given up on); whether
        it still is after."""
        job = await self._repo.get_job(job_id)
        if job is None or job.delivery is not Posting.PENDING:
            return False
        try:
            await self._settle(job, DISCORD_FAILED, post=post)
        except discord.DiscordServerError as error:  # Discord's trouble goes on: looked for again at the next try
            log.warning("job %d: could not look for its video's post (%s %s); the next try looks again", job_id,
                        error.status, error.code)
            return True
        after = await self._repo.get_job(job_id)
        return after is not None and after.delivery is Posting.PENDING

    async def _settle(self, job: JobRecord, cause: Cause, *, post: bool = True) -> None:
        """One pending post: found, else posted (`post`, a kept video), else its job fails, not charged, its
        requester told. A post Discord fails again stays pending: at a start, tried again as any first post is
        (bot.ui.delivery tells the user); in a retry, quietly (its next try, or the giving up, tells the user)."""
        self._delivery.reopen(job)
        found = await self._found(job, later=cause.retried and post)  # None: cannot be known
        if found:
            return
        kept = not job.private and self._media is not None and self._media.has(job.id)
        if post and kept and found is False:
            assert self._media is not None
            video = await asyncio.to_thread(self._media.path(job.id).read_bytes)
            log.info("job %d: its video's post %s; posting it now", job.id, cause.logged)
            await self._delivery.job_done(Delivered(job, video, job.seed or 0, (cause.note,), job.gpu_s or 0.0),
                                          quiet=cause.retried)
            return
        failed = await self._repo.mark_undelivered(job.id, f"its video's post {cause.logged}", now=self._now())
        why = ("private videos are not kept" if job.private else "the channel's messages could not be read"
               if found is None else "the video was not kept" if not kept
               else f"{counted(1 + len(RETRY_AFTER_S), 'try', 'tries')} failed")
        log.warning("job %d: its video's post %s and it cannot be posted again (%s); the requester is told and not "
                    "charged", job.id, cause.logged, why)
        again = "please run it again" if found is False else "if it did not reach you, please run it again"
        await self._delivery.job_failed(failed, f"Sorry, job #{job.id} finished, but {cause.apology} ({why}); "
                                                f"{again}. Nothing was charged.")

    async def _found(self, job: JobRecord, *, later: bool = False) -> bool | None:
        """Whether the job's video reached Discord before the process ended — in its channel (a public job) or in its
        requester's DMs (where a private one goes past its token, and a public one where the bot may not post) —
        then its message id is recorded and the status points at it; None when that cannot be known (a private
        job's ephemeral followup cannot be looked for, or a channel's messages could not be read). `later`: a 5xx
        while looking is raised (a retry's next try looks again)."""
        after = discord.Object(max(job.status_message_id or 0, discord.utils.time_snowflake(
            (job.finished_at or job.created_at) - CLOCKS_APART)))  # posted after its row said done
        unknown = job.private
        channel = None if job.private else self._bot.get_partial_messageable(job.channel_id, guild_id=job.guild_id)
        for place in ("channel", "dm"):
            try:
                where = channel if place == "channel" else await self._bot.create_dm(discord.Object(job.user_id))
                message = None if where is None else await self._search(where, job, after)
            except discord.HTTPException as error:
                if later and error.status >= 500:
                    raise
                log.warning("job %d: could not look for its video's post in its %s (%s %s)", job.id,
                            "channel" if place == "channel" else "requester's DMs", error.status, error.code)
                unknown = True
                continue
            if message is not None:
                log.info("job %d: its video's post had reached Discord before the last stop (message %d)", job.id,
                         message.id)
                await self._repo.set_result_message(job.id, message.id)
                await self._delivery.point_status_at(job, message)
                return True
        return None if unknown else False

    async def _search(self, channel: discord.abc.Messageable, job: JobRecord,
                      after: discord.Object) -> discord.Message | None:
        """The bot's own message with the job's MP4 among the LOOK_BACK messages of `channel` after `after`."""
        filename, me = self._delivery.filename(job), self._bot.user.id if self._bot.user else None
        async for message in channel.history(after=after, limit=LOOK_BACK):
            mine = message.author.id == me or message.webhook_id == job.application_id
            if mine and any(attached.filename == filename for attached in message.attachments):
                return message
        return None
