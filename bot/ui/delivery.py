"""Job events to Discord: one living status message per job, then the MP4 as a new message that notifies its requester.

The status message is the command's deferred response, edited through the interaction webhook rebuilt from the
job row (so it works after a restart): the queue place (kept fresh by bot.ui.queue_board), then the stages in a
member's words (bot.ui.status). Discord notifies nobody of an edit, so the video goes up as a new message mentioning
the requester (allowed_mentions: that user only): a followup through the token while it lives (ephemeral for a
private job), else a channel message (a DM for a private job); the status then points at it, without its buttons.
Once the 15-minute token is too old or refused, status edits go through the bot token to the same message; private
jobs never touch the channel. A status deleted by hand (a moderator tidying the channel: MESSAGE_DELETE, or, where no
event came, 404 Unknown Message in a channel that is still there) is never edited or posted again; the job goes on,
and its outcome still reaches its requester as a new message; a video deleted by hand leaves its status saying so, as 🗑
Delete does. A thread archived or locked meanwhile (50083, through
either token) takes no edit or post: its statuses are left, and the outcome goes to the requester's DMs.
"""

from __future__ import annotations

import asyncio
import errno
import io
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import discord

from bot.gpu.previews import FILENAME as PREVIEW_FILENAME
from bot.gpu.previews import Preview
from bot.jobs.events import Delivered, Submitted
from bot.media import MediaStore
from bot.settings import Settings
from bot.ui.discord_errors import (
    THREAD_ARCHIVED,
    channel_gone,
    discord_said,
    message_deleted,
    out_of_reach,
    token_refused,
    too_large,
)
from bot.ui.queue_board import Place, QueueBoard, Sleep
from bot.ui.status import (
    deleted_text,
    finished_text,
    queued_text,
    rendering_text,
    result_text,
    starting_text,
    uploading_text,
)
from storage import JobRecord, JobState, Repository, utc_now

log = logging.getLogger(__name__)

REMEMBER_FINISHED = 1024  # finished job ids kept, so a late event can never overwrite a result
ResultView = Callable[[JobRecord], discord.ui.View]  # the buttons under a finished video
RetryLater = Callable[[JobRecord], str | None]  # a pending post tried again later: when, in words; None: not now


@dataclass
class _Status:
    """What delivery knows about one job's status message."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one edit at a time, in order
    phase: str = "new"  # new → queued → running → final
    last_edit: float | None = None  # monotonic time of the last started/progress edit
    started: float | None = None  # monotonic time the job started, for the time left
    token_dead: bool = False  # the interaction token is too old or was refused
    message_id: int | None = None  # the status message (the original response), for bot-token edits
    preview_step: int | None = None  # the step of the live preview attached to the status message
    channel_closed: bool = False  # the channel is deleted, hidden from the bot, or a thread locked or archived: no
    #                               status is tried there again
    deleted: bool = False  # the status message was deleted by hand: never edited or posted again


def mentions(user_id: int) -> discord.AllowedMentions:
    """Allow pinging the requester only: prompt text can never ping @everyone, @here or a role."""
    return discord.AllowedMentions(everyone=False, roles=False, users=[discord.Object(user_id)], replied_user=False)


def _files(video: tuple[str, bytes] | None, key: str = "attachments") -> dict[str, list[discord.File]]:
    """Keyword arguments attaching the video as a fresh `discord.File` (files are single-use), or none."""
    return {} if video is None else {key: [discord.File(io.BytesIO(video[1]), filename=video[0])]}


def _view(view: discord.ui.View | None, *, final: bool = False) -> dict[str, discord.ui.View | None]:
    """Keyword arguments attaching `view`'s buttons; without one, a final message clears the status's ✖ Cancel and
    any other edit keeps the components (an edit without `view` keeps them)."""
    if view is not None:
        return {"view": view}
    return {"view": None} if final else {}


async def _gif(job: JobRecord, preview: Preview) -> bytes | None:
    """The live preview as the GIF a status edit carries (CPU work, in a thread); None, logged, when it cannot be made:
    the edit goes on without it."""
    try:
        return await asyncio.to_thread(preview.gif)
    except Exception:
        log.exception("job %d: the live preview of step %d could not be made a GIF", job.id, preview.step)
        return None


class Delivery:
    """Implements the service's JobEvents on Discord; every message carries `mentions(requester)`."""

    def __init__(
        self,
        bot: discord.Client,
        settings: Settings,
        repo: Repository,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utc_now,
        sleep: Sleep = asyncio.sleep,
        media: MediaStore | None = None,
        result_view: ResultView | None = None,
        status_view: ResultView | None = None,
    ) -> None:
        self._bot = bot
        self._repo = repo
        self._media = media  # keeps public videos for the showcase and the gallery
        self._result_view = result_view
        self._status_view = status_view  # ✖ Cancel under a waiting or rendering job's status
        self._interval = settings.status_edit_interval_s
        self._token_max_age = settings.token_fallback_after_s
        self._monotonic = monotonic
        self._now = now
        self._sleep = sleep
        self._statuses: dict[int, _Status] = {}
        self._finished: deque[int] = deque(maxlen=REMEMBER_FINISHED)
        self.board: QueueBoard | None = None  # keeps queued statuses fresh, once `watch_queue` started it
        self.retry_later: RetryLater | None = None  # a post Discord failed, tried again (bot.ui.late_posts)

    def watch_queue(self, places: Callable[[], list[Place]]) -> None:
        """Keep every queued job's place and ETA fresh (`places`: the service's), from now until `close`."""
        self.board = QueueBoard(places, self.show_place, now=self._now, monotonic=self._monotonic, sleep=self._sleep,
                                gap_s=self._interval)
        self.board.start()

    async def close(self) -> None:
        """Stop refreshing queued statuses."""
        if self.board is not None:
            await self.board.stop()

    # --- events ---------------------------------------------------------------------------------------------------

    async def job_queued(self, submitted: Submitted, message_id: int | None = None) -> None:
        """Show the queue position and ETA (unless the job already started); remember the status message id."""
        job = submitted.job
        status = self._status(job)
        if message_id is not None:
            status.message_id = message_id
        if status.phase == "new":  # set before the first await, so job_started waits for this edit
            status.phase = "queued"
            now = self._now()
            if self.board is not None:
                self.board.shown(job.id, submitted.position, submitted.eta, now)
            text = queued_text(job, submitted.position, submitted.eta, now)
            await self._guard(self._show(job, status, text), job, "showing its queue place")
        self._moved()  # a new job may go ahead of others (users take turns)
        if message_id is not None:
            await self._guard(self._repo.set_status_message(job.id, message_id), job, "storing its status id")

    def now(self) -> datetime:
        """The clock statuses are written by (a test's, in tests)."""
        return self._now()

    async def show_place(self, job: JobRecord, position: int, eta: datetime) -> bool:
        """Put a queued job's new place and ETA on its status (bot.ui.queue_board); False once it is no longer
        queued."""
        status = self._status(job)
        if status.phase not in ("new", "queued"):
            return False
        status.phase = "queued"
        return await self._show(job, status, queued_text(job, position, eta, self._now()), queued_only=True)

    async def job_started(self, job: JobRecord) -> None:
        """The job got a GPU."""
        self._moved()
        status = self._status(job)
        if status.phase == "final":
            return
        status.phase, status.last_edit = "running", self._monotonic()
        status.started = status.last_edit
        await self._guard(self._show(job, status, starting_text(job)), job, "starting")

    async def job_progress(self, job: JobRecord, step: int, total: int, preview: Preview | None = None) -> None:
        """Rendering progress as a bar with the time left; edits at most every `status_edit_interval_s`, skipped (not
        queued) in between. The last step reads "Encoding": the frames are decoded and made an MP4 next.

        An edit that goes through carries the live preview (`preview.gif`, replacing the last) if it is a new one: made
        a GIF here, off the loop, only for the edits that show one.
        """
        status = self._status(job)
        now = self._monotonic()
        if status.phase == "final":
            return
        recent = status.last_edit is not None and now - status.last_edit < self._interval
        if step < total and (recent or status.lock.locked()):  # the last step always shows: decoding follows
            return
        status.phase, status.last_edit = "running", now
        elapsed = None if status.started is None else now - status.started
        text = rendering_text(job, step, total, elapsed)
        attached = None
        if preview is not None and preview.step != status.preview_step:
            status.preview_step = preview.step
            gif = await _gif(job, preview)
            attached = None if gif is None else (PREVIEW_FILENAME, gif)
        await self._guard(self._show(job, status, text, video=attached), job, "showing progress")

    async def job_done(self, delivered: Delivered, *, quiet: bool = False) -> None:
        """Keep a public video in the media directory; post the MP4 with its details and buttons as a new message.
        `quiet`: a post Discord fails is only logged (a retry's, bot.ui.late_posts: the next try tells the user)."""
        job = delivered.job
        if self._media is not None and not job.private:
            await self._keep(job, delivered.video)
        view = self._result_view(job) if self._result_view is not None else None
        await self._finish(job, result_text(delivered), (self.filename(job), delivered.video), view, delivered.shrink,
                           quiet=quiet)

    async def _keep(self, job: JobRecord, video: bytes) -> None:
        """Keep a public video in the media directory. One that cannot be written there (a full disk, a read-only
        mount) is one ERROR line naming the folder and the cause, not a Discord failure: the video is posted all the
        same, without the copy ⬆️ Upscale re-renders (and a post a restart cut short would make)."""
        assert self._media is not None
        try:
            await self._media.save(job.id, video)
        except OSError as error:
            cause = error.__cause__ if isinstance(error.__cause__, OSError) else error  # t2v's WriteError: its cause
            full = cause.errno in (errno.ENOSPC, errno.EDQUOT)
            advice = ("free space under MEDIA_DIR={}, or set MEDIA_DIR to a folder with room that the bot may write"
                      if full else "let the bot's user write MEDIA_DIR={} (a read-only mount, or its owner's "
                      "permissions), or set MEDIA_DIR to a folder it may write")
            log.error("job %d: its video is not kept (%s): it is posted all the same, but cannot be upscaled; %s",
                      job.id, error, advice.format(self._media.root))
        except Exception:
            log.exception("job %d: keeping its video failed", job.id)

    async def job_failed(self, job: JobRecord, message: str) -> None:
        """The service's short apology, which names the job."""
        text = message if f"#{job.id}" in message else f"Sorry, job #{job.id} failed: {message}"
        await self._finish(job, text, None)

    async def job_cancelled(self, job: JobRecord) -> None:
        """Confirm a cancelled job."""
        await self._finish(job, f"✖ Cancelled job #{job.id}.", None)

    async def job_cancelled_by_moderator(self, job: JobRecord) -> None:
        """Tell the requester a moderator of the server cancelled their job (✖ Cancel or /cancel on it)."""
        await self._finish(job, f"✖ A moderator cancelled job #{job.id}.", None)

    async def job_cancelled_by_block(self, job: JobRecord) -> None:
        """Tell the requester their job was cancelled because a moderator blocked them (the block's own message, with
        its reason and end, answers their next request)."""
        await self._finish(job, f"✖ A moderator cancelled job #{job.id}: you are blocked from making videos.", None)

    async def job_cancelled_by_server_removal(self, job: JobRecord) -> None:
        """Tell the requester their job was cancelled because the bot was removed from its server (kicked, the server
        deleted, or left), so it is not charged: where the message can still reach them (a private job's DM, say)."""
        await self._finish(job, f"✖ Job #{job.id} was cancelled: the bot was removed from the server it was asked in. "
                                "Nothing was charged.", None)

    def reopen(self, job: JobRecord) -> None:
        """A finished job whose post is pending gets a final message again (bot.ui.late_posts: its video, or why
        not)."""
        if job.id in self._finished:
            self._finished.remove(job.id)

    def filename(self, job: JobRecord) -> str:
        """The name a job's MP4 is posted under (bot.ui.late_posts looks for it)."""
        return f"video-{job.id}.mp4"

    async def point_status_at(self, job: JobRecord, posted: discord.Message) -> None:
        """A finished job's status (through the bot token) points at its video's message, found in its channel or its
        requester's DMs; the job is finished for this delivery."""
        status = self._status(job)
        status.token_dead = True
        jump = None if job.private else _link(job, posted)
        await self._guard(self._edit_status(job, status, finished_text(job, jump)), job,
                          "pointing the status at the result")
        self._statuses.pop(job.id, None)
        self._finished.append(job.id)

    async def result_deleted(self, job: JobRecord) -> None:
        """A deleted job's status says so instead of linking to the result that went: through the interaction token
        while it lives, else (a public job) through the bot token. A status that can no longer be edited (a private
        one past its token, a channel the bot may not see) is left as it was, logged: the deletion stands."""
        status = _Status(phase="final", message_id=job.status_message_id)
        try:
            await self._edit_status(job, status, deleted_text(job))
        except discord.HTTPException as error:
            log.info("job %d: its status could not be told the video was deleted (%s %s); left as it was", job.id,
                     error.status, error.code)
        except Exception:
            log.exception("job %d: telling its status the video was deleted failed", job.id)

    async def results_deleted(self, message_ids: list[int]) -> None:
        """Messages deleted in Discord (MESSAGE_DELETE): a job's video among them was deleted by hand (a moderator
        tidying the channel), so its status says so instead of linking to the message that went, as after 🗑 Delete
        (whose job is marked deleted before its message goes: its status was told already, and is skipped here)."""
        try:
            jobs = await self._repo.jobs_of_result_messages(message_ids)
        except Exception:
            log.exception("could not look up the jobs of deleted messages %s", message_ids)
            return
        for job in jobs:
            if job.deleted_at is not None or job.status_message_id == job.result_message_id:
                continue  # 🗑 Delete's own removal, or a video that was on its status (that status is gone)
            log.info("job %d: its video's message %d was deleted by hand; its status says so", job.id,
                     job.result_message_id)
            await self.result_deleted(job)

    def status_deleted(self, message_ids: list[int]) -> None:
        """Messages deleted in Discord (MESSAGE_DELETE): a job's status among them was deleted by hand (the bot never
        deletes one), so it is never edited or posted again; its job goes on and its outcome still reaches its
        requester, as a new message."""
        for job_id, status in self._statuses.items():
            if status.message_id in message_ids:
                self._status_deleted(job_id, status)

    # --- transport --------------------------------------------------------------------------------------------------

    def _moved(self) -> None:
        if self.board is not None:
            self.board.moved()

    def _status(self, job: JobRecord) -> _Status:
        if job.id in self._finished:
            return _Status(phase="final")
        status = self._statuses.get(job.id)
        if status is None:
            status = self._statuses[job.id] = _Status(message_id=job.status_message_id)
        return status

    async def _guard(self, work: Awaitable[object], job: JobRecord, what: str) -> None:
        """Await `work`; a Discord failure is logged and never reaches the service."""
        try:
            await work
        except Exception:
            log.exception("job %d: Discord delivery failed while %s", job.id, what)

    async def _finish(self, job: JobRecord, content: str, video: tuple[str, bytes] | None,
                      view: discord.ui.View | None = None, shrink: Callable[[int], bytes] | None = None, *,
                      quiet: bool = False) -> None:
        """The final message of a job: always sent, after any edit in flight; then forget the job. A video Discord
        refused (4xx) fails its job; one Discord failed (5xx, a lost connection) stays pending (`_pending`)."""
        self._moved()
        status = self._status(job)
        if status.phase == "final":
            log.warning("job %d: a second final event was ignored", job.id)
            return
        status.phase = "final"
        try:
            if video is None:
                await self._show(job, status, content, final=True)
            else:
                await self._deliver(job, status, content, video, view, shrink)
        except discord.HTTPException as error:
            log.exception("job %d: delivering the result failed (%s %s)", job.id, error.status, error.code)
            refused = error.status < 500  # Discord's own answer; a 5xx may have come after it took the upload
            if video is not None and not refused:
                await self._pending(job, status, discord_said(error), quiet=quiet)
                return
            charged = " Nothing was charged." if video is not None else ""
            apology = (f"Sorry, job #{job.id} finished but could not be posted here ({discord_said(error)})."
                       f"{charged}")
            ended = replace(job, state=JobState.FAILED) if video is not None else job  # its status says it failed
            await self._guard(self._show(ended, status, apology, final=True), job, "apologising")
            if refused:
                await self._unposted(job, video, f"Discord refused its video ({error.status} {error.code})")
        except Exception:  # the connection lost or closed under the upload: it may have reached Discord
            log.exception("job %d: delivering the result failed", job.id)
            if video is not None:
                await self._pending(job, status, None, quiet=quiet)
        finally:
            self._statuses.pop(job.id, None)
            self._finished.append(job.id)

    async def _pending(self, job: JobRecord, status: _Status, reason: str | None, *, quiet: bool) -> None:
        """A video Discord failed (a 5xx, or `reason` None: the connection lost) may have reached it, so its delivery
        stays pending: tried again in this process (`retry_later`), its requester told when; else, as the bot closes,
        at the next start (bot.ui.late_posts). `quiet`: a retry's failure, which its next try tells of."""
        when = None if quiet or self.retry_later is None else self.retry_later(job)
        if quiet or (reason is None and when is None):  # a connection closed as the bot stops: the next start's
            return
        again = "" if when is None else f"; the bot tries again {when}"
        apology = (f"Sorry, job #{job.id} finished but could not be posted here "
                   f"({reason or 'the connection to Discord was lost'}){again}.")
        await self._guard(self._show(job, status, apology, final=True), job, "apologising")

    async def _unposted(self, job: JobRecord, video: tuple[str, bytes] | None, why: str) -> None:
        """A video that did not reach its requester: its job fails, not charged, and it is not posted after a restart
        (a post a stop cut short stays pending instead)."""
        if video is not None:
            await self._guard(self._repo.mark_undelivered(job.id, why, now=self._now()), job,
                              "recording that its video was not posted")

    async def _deliver(self, job: JobRecord, status: _Status, content: str, video: tuple[str, bytes],
                       view: discord.ui.View | None, shrink: Callable[[int], bytes] | None) -> None:
        """The video as a new message that notifies its requester; the job row and the status then point at it."""
        await self._guard(self._edit_status(job, status, uploading_text(job)), job, "showing the upload")
        try:
            posted = await self._post_video(job, status, content, video, view)
        except discord.HTTPException as error:
            if shrink is None or not too_large(error):
                raise
            posted = await self._post_video(job, status, content, await _smaller(job, video, shrink, error), view)
        await self._guard(self._repo.set_result_message(job.id, posted.id), job, "storing its result id")
        jump = None if job.private else _link(job, posted)
        await self._guard(self._edit_status(job, status, finished_text(job, jump)), job,
                          "pointing the status at the result")

    async def _post_video(self, job: JobRecord, status: _Status, content: str, video: tuple[str, bytes] | None,
                          view: discord.ui.View | None) -> discord.Message | discord.WebhookMessage:
        """A new message with the MP4 (or, without `video`, the text alone) that mentions the requester: a followup
        through the token (ephemeral for a private job), else through the bot token (`_send`)."""
        mention = f"<@{job.user_id}>"
        text = content if content.startswith(mention) else f"{mention} {content}"
        buttons = {} if view is None else {"view": view}
        if self._token_usable(job, status) and not status.channel_closed:
            try:
                return await self._webhook(job).send(text, **_files(video, "files"), **buttons,  # type: ignore
                                                     allowed_mentions=mentions(job.user_id), ephemeral=job.private,
                                                     suppress_embeds=True, wait=True)
            except discord.HTTPException as error:
                self._token_failed(job, status, error)
        return await self._send(job, text, video, view, here=not status.channel_closed)

    async def _send(self, job: JobRecord, text: str, video: tuple[str, bytes] | None = None,
                    view: discord.ui.View | None = None, *, here: bool = True) -> discord.Message:
        """A new message through the bot token in the job's channel; a DM for a private job, where the bot may not
        post in the channel (slash commands work where it may not send messages or attach files), and where the channel
        is known closed (not `here`: a thread archived or locked, say)."""
        def extras() -> dict[str, Any]:  # a fresh file each time: a discord.File is read once
            return {**_files(video, "files"), **({} if view is None else {"view": view}),
                    "allowed_mentions": mentions(job.user_id), "suppress_embeds": True}

        if not job.private and here:
            channel = self._bot.get_partial_messageable(job.channel_id, guild_id=job.guild_id)
            try:
                return await channel.send(text, **extras())
            except discord.HTTPException as error:  # closed to the bot, deleted since the command, a thread locked
                if not out_of_reach(error):
                    raise
                log.info("job %d: may not post in channel %d (%s %s); sending it to its requester directly", job.id,
                         job.channel_id, error.status, error.code)
        dm = await self._bot.create_dm(discord.Object(job.user_id))
        return await dm.send(text, **extras())

    async def _edit_status(self, job: JobRecord, status: _Status, content: str) -> None:
        """Replace the status message's text, dropping its buttons and any live preview; never a new message (a
        private status past its token cannot be reached)."""
        async with status.lock:
            if status.deleted:
                return
            if self._token_usable(job, status) and not status.channel_closed:
                try:
                    await self._edit_original(job, content, None, None, clear=True, final=True)
                    return
                except discord.HTTPException as error:
                    self._token_failed(job, status, error)
            if not job.private:
                await self._edit_status_message(job, status, content)

    async def _show(self, job: JobRecord, status: _Status, content: str, *, video: tuple[str, bytes] | None = None,
                    view: discord.ui.View | None = None, final: bool = False, queued_only: bool = False) -> bool:
        """Put `content` (and the video) on the job's status message; fall back to the channel without a token.
        False when it was not shown: the job moved on (final, or not queued for `queued_only`)."""
        async with status.lock:
            if (status.phase == "final" and not final) or (queued_only and status.phase != "queued") or (
                    status.deleted and not final):
                return False
            if not final and self._status_view is not None:
                view = self._status_view(job)
            if self._token_usable(job, status) and not status.deleted and not status.channel_closed:
                try:
                    clear = final and status.preview_step is not None  # a last preview must not stay
                    await self._edit_original(job, content, video, view, clear=clear, final=final)
                    return True
                except discord.HTTPException as error:
                    self._token_failed(job, status, error)
            if final:
                await self._post_result(job, status, content)
            else:
                await self._edit_in_channel(job, status, content, video, view)
            return True

    def _token_usable(self, job: JobRecord, status: _Status) -> bool:
        if status.token_dead or not job.interaction_token or not job.application_id:
            return False
        age = (self._now() - job.created_at).total_seconds()
        if age >= self._token_max_age:
            log.info("job %d: interaction token is %.0f s old; using the channel", job.id, age)
            status.token_dead = True
        return not status.token_dead

    def _token_refused(self, job: JobRecord, status: _Status, error: discord.HTTPException) -> None:
        log.info("job %d: interaction token refused (%s %s); using the channel", job.id, error.status, error.code)
        status.token_dead = True

    def _token_failed(self, job: JobRecord, status: _Status, error: discord.HTTPException) -> None:
        """A request through the token failed: a thread archived or locked (50083) is closed to the job (no status is
        tried there again; its outcome goes to its requester directly); a token refused leaves the channel to serve
        from now on; any other error is raised."""
        if error.code == THREAD_ARCHIVED:
            if not status.channel_closed:
                log.info("job %d: its thread %d is archived or locked (%s %s); its requester hears of the outcome "
                         "directly", job.id, job.channel_id, error.status, error.code)
            status.channel_closed = True
        elif token_refused(error):
            self._token_refused(job, status, error)
        else:
            raise error

    @staticmethod
    def _status_deleted(job_id: int, status: _Status) -> None:
        if not status.deleted:
            log.info("job %d: its status message was deleted by hand; not posted again, its requester hears of the "
                     "outcome in a new message", job_id)
        status.deleted = True

    def _webhook(self, job: JobRecord) -> discord.Webhook:
        """The job's interaction webhook, rebuilt from its row (an application webhook, as discord.py's
        Interaction.followup, so that it may send ephemeral messages)."""
        assert job.application_id is not None and job.interaction_token is not None
        webhook = discord.Webhook.partial(job.application_id, job.interaction_token, client=self._bot)
        webhook.type = discord.WebhookType.application
        return webhook

    async def _edit_original(self, job: JobRecord, content: str, video: tuple[str, bytes] | None,
                             view: discord.ui.View | None = None, clear: bool = False, final: bool = False) -> None:
        """Edit the original response; `video` replaces its attachments, else `clear` removes them (a preview)."""
        files = _files(video) if video is not None or not clear else {"attachments": []}
        await self._webhook(job).edit_message("@original", content=content, **files,  # type: ignore[arg-type]
                                              **_view(view, final=final), allowed_mentions=mentions(job.user_id))

    async def _edit_in_channel(self, job: JobRecord, status: _Status, content: str,
                               preview: tuple[str, bytes] | None = None, view: discord.ui.View | None = None) -> None:
        """Status (and a new preview) through the bot token: edit the status message, or post one; never if private."""
        if job.private or status.channel_closed or status.deleted:
            return  # an ephemeral status cannot be reached without the token, and private jobs stay out of channels
        channel = self._bot.get_partial_messageable(job.channel_id, guild_id=job.guild_id)
        if status.message_id is not None:
            try:
                await channel.get_partial_message(status.message_id).edit(content=content, **_files(preview),
                                                                          **_view(view),
                                                                          allowed_mentions=mentions(job.user_id))
                return
            except discord.HTTPException as error:  # deleted by hand, or older than an hour (30046)
                if message_deleted(error):
                    self._status_deleted(job.id, status)
                    return
                log.info("job %d: status message %d not editable (%s %s); posting a new one", job.id,
                         status.message_id, error.status, error.code)
        try:
            message = await channel.send(content, **_files(preview, "files"), **_view(view),  # type: ignore[arg-type]
                                         allowed_mentions=mentions(job.user_id), suppress_embeds=True)
        except discord.HTTPException as error:
            if not out_of_reach(error):
                raise
            log.info("job %d: channel %d takes no status (%s %s); its requester hears of the outcome directly",
                     job.id, job.channel_id, error.status, error.code)
            status.channel_closed = channel_gone(error)
            return
        status.message_id = message.id
        await self._repo.set_status_message(job.id, message.id)

    async def _post_result(self, job: JobRecord, status: _Status, content: str) -> None:
        """A final text (failed, cancelled) the status cannot show: a new message mentioning the user, a followup while
        the token lives (the status was deleted by hand), else in the channel (a DM if private); the status then points
        at it."""
        posted = await self._post_video(job, status, content, None, None)
        if not job.private and not status.deleted:
            await self._guard(self._edit_status_message(job, status, finished_text(job, _link(job, posted))), job,
                              "pointing the status at the message")

    async def _edit_status_message(self, job: JobRecord, status: _Status, content: str) -> None:
        """A public status's last text through the bot token, without its buttons and live preview; left as it is
        (logged) when it or its channel is gone or closed to the bot: its requester got the outcome elsewhere."""
        if status.message_id is None or status.channel_closed or status.deleted:
            return
        channel = self._bot.get_partial_messageable(job.channel_id, guild_id=job.guild_id)
        cleared = {} if status.preview_step is None else {"attachments": []}  # the live preview goes too
        try:
            await channel.get_partial_message(status.message_id).edit(content=content, **cleared, view=None,
                                                                      allowed_mentions=mentions(job.user_id))
        except discord.HTTPException as error:
            if not out_of_reach(error):
                raise
            status.deleted = message_deleted(error)
            log.info("job %d: status message %d is out of reach (%s %s); left as it was", job.id, status.message_id,
                     error.status, error.code)


def _link(job: JobRecord, posted: discord.Message | discord.WebhookMessage) -> str:
    """A link to a posted message: in the job's channel, or in the requester's DMs."""
    if posted.channel.id == job.channel_id:
        return _jump_url(job, posted.id)
    return f"https://discord.com/channels/@me/{posted.channel.id}/{posted.id}"


def _jump_url(job: JobRecord, message_id: int) -> str:
    """A link to a message in the job's channel (of its server, or of a DM)."""
    return f"https://discord.com/channels/{job.guild_id or '@me'}/{job.channel_id}/{message_id}"


async def _smaller(job: JobRecord, video: tuple[str, bytes], shrink: Callable[[int], bytes],
                   refused: discord.HTTPException) -> tuple[str, bytes]:
    """The video re-encoded at half the size Discord refused as too large (413/40005), once."""
    limit = len(video[1]) // 2
    log.info("job %d: Discord refused the %d-byte video as too large (%s %s); re-encoding it to %d bytes", job.id,
             len(video[1]), refused.status, refused.code, limit)
    try:
        return video[0], await asyncio.to_thread(shrink, limit)
    except Exception:
        log.exception("job %d: re-encoding the video smaller failed", job.id)
        raise refused from None
