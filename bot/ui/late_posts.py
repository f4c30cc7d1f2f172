"""At a start, the videos whose post the last process's end cut short (a kill, a crash, a shutdown past its grace):
their jobs are done, their delivery (storage's `jobs.delivery`) still pending.

Discord may have taken an upload whose answer never came back, so each public job's channel is looked through first
(the messages from just before its job was done, for the bot's own post of the job's MP4): found, its id is recorded
and the status points at it, never a second post. Not found, a public video kept in the media directory is posted
now, as any result is, with a note that it is late. Any other — a private video (never kept), a public one no longer
kept, one whose channel cannot be read — fails, not charged, and its requester is told in a few words. The
requester's DMs are looked through too: a private video past its token, and a public one where the bot may not post
in the channel, went there.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import discord

from bot.jobs.events import Delivered
from bot.media import MediaStore
from bot.ui.delivery import Delivery
from storage import JobRecord, Repository

log = logging.getLogger(__name__)

LOOK_BACK = 500  # messages searched for the post a stop cut short, from just before the job was done
CLOCKS_APART = timedelta(minutes=10)  # this host's clock may be this far ahead of Discord's
LATE = "posted late: the bot restarted while it was posting this video"  # the note on a video posted now


class LatePosts:
    """Finds, makes or gives up on each post the last stop cut short, through the bot's delivery."""

    def __init__(self, bot: discord.Client, repo: Repository, delivery: Delivery, media: MediaStore | None,
                 now: Callable[[], datetime]) -> None:
        self._bot, self._repo, self._delivery, self._media, self._now = bot, repo, delivery, media, now

    async def post(self) -> None:
        """Each pending post, oldest job first; a failure is logged and the next is tried."""
        for job in await self._repo.undelivered():
            try:
                await self._post_late(job)
            except Exception:
                log.exception("job %d: posting its video after the restart failed", job.id)

    async def _post_late(self, job: JobRecord) -> None:
        found = await self._found(job)  # None: cannot be known
        if found:
            return
        kept = not job.private and self._media is not None and self._media.has(job.id)
        if kept and found is False:
            assert self._media is not None
            video = await asyncio.to_thread(self._media.path(job.id).read_bytes)
            log.info("job %d: its video's post was cut short by the last stop; posting it now", job.id)
            await self._delivery.job_done(Delivered(job, video, job.seed or 0, (LATE,), job.gpu_s or 0.0))
            return
        failed = await self._repo.mark_undelivered(job.id, "its video's post was cut short by a restart",
                                                   now=self._now())
        why = "private videos are not kept" if job.private else (
            "the video was not kept" if found is False else "the channel's messages could not be read")
        log.warning("job %d: its video's post was cut short by the last stop and it cannot be posted again (%s); the "
                    "requester is told and not charged", job.id, why)
        again = "please run it again" if found is False else "if it did not reach you, please run it again"
        await self._delivery.job_failed(failed, f"Sorry, job #{job.id} finished, but the bot restarted while it was "
                                                f"sending the video ({why}); {again}. Nothing was charged.")

    async def _found(self, job: JobRecord) -> bool | None:
        """Whether the job's video reached Discord before the process ended — in its channel (a public job) or in its
        requester's DMs (where a private one goes past its token, and a public one where the bot may not post) —
        then its message id is recorded and the status points at it; None when that cannot be known (a private
        job's ephemeral followup cannot be looked for, or a channel's messages could not be read)."""
        after = discord.Object(max(job.status_message_id or 0, discord.utils.time_snowflake(
            (job.finished_at or job.created_at) - CLOCKS_APART)))  # posted after its row said done
        unknown = job.private
        channel = None if job.private else self._bot.get_partial_messageable(job.channel_id, guild_id=job.guild_id)
        for place in ("channel", "dm"):
            try:
                where = channel if place == "channel" else await self._bot.create_dm(discord.Object(job.user_id))
                message = None if where is None else await self._search(where, job, after)
            except discord.HTTPException as error:
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
