"""The showcase: approved videos are posted to their server's showcase channel with the prompt, credit (display
name, no ping) and a ⭐ vote button, and listed in the gallery; a deleted job's post is taken down. A server's
moderators decide with `/videomod showcase ...` (bot.ui.cogs.showcase) and choose its channel; SHOWCASE_CHANNEL_ID
is only the default of the server that channel belongs to, so no server's videos are ever posted in another's.

A post deleted in Discord by hand (the message, or its whole channel) is forgotten when Discord says so — its
deletion event, a 404 where the bot touches it, or (deleted while the bot was away, when Discord sends no event) its
absence from the channel's history, read at each start — so no link leads to it and approving the video again posts
it anew; the entry itself stays approved, in the gallery. A channel the bot lost (403) is left as it is, logged.
A video approved while its author is blocked is not posted (its ⭐ would refuse every press): approving it again once
the block ends posts it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import discord
from discord.ext import commands

from bot.characters import counted, shown
from bot.errors import Denied
from bot.media import MediaStore
from bot.moderation.servers import ServerSettings
from bot.settings import Settings
from bot.ui.discord_errors import THREAD_ARCHIVED, UNKNOWN_CHANNEL, UNKNOWN_MESSAGE
from bot.ui.in_flight import KeptPresses
from bot.ui.replies import answer_privately
from bot.ui.status import settings_line
from storage import JobRecord, Repository, ShowcaseError, ShowcaseRecord, ShowcaseRepository, ShowcaseState

log = logging.getLogger(__name__)

T = TypeVar("T")

RESULTS_COG = "Results"  # the cog that handles result buttons and votes
GONE_CODES = (UNKNOWN_CHANNEL, UNKNOWN_MESSAGE)  # the post was deleted there


class VoteButton(KeptPresses, discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"showcase:vote:(?P<entry>\d+)"):
    """⭐ with the entry's vote count; pressing it toggles the member's vote."""

    def __init__(self, entry_id: int, votes: int = 0) -> None:
        super().__init__(discord.ui.Button(emoji="⭐", label=str(votes), style=discord.ButtonStyle.secondary,
                                           custom_id=f"showcase:vote:{entry_id}"))
        self.entry_id = entry_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item[Any],
                             match: re.Match[str]) -> VoteButton:
        """Rebuild the button from its custom_id (after a restart, too)."""
        return cls(int(match["entry"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        """Hand the vote to the Results cog."""
        cog = interaction.client.get_cog(RESULTS_COG) if isinstance(interaction.client, commands.Bot) else None
        if cog is None:
            await answer_privately(interaction, "Voting is not available right now; please try again later.")
            return
        await cog.vote(interaction, self.entry_id)  # type: ignore[attr-defined]


def vote_view(entry_id: int, votes: int) -> discord.ui.View:
    """The ⭐ button under a showcase post."""
    view = discord.ui.View(timeout=None)
    view.add_item(VoteButton(entry_id, votes))
    return view


def _post_text(entry: ShowcaseRecord, job: JobRecord, gallery_url: str | None) -> str:
    """A showcase post's words: the job and its credit (no ping), the prompt, its settings, its gallery page."""
    lines = [f"⭐ **Showcase** · job #{job.id} · by {shown(entry.author_name, 100)}", f"> {shown(job.prompt)}",
             f"-# {settings_line(job, job.seed)}"]
    if gallery_url:  # the video's own page, which unfurls wherever it is shared
        lines.append(f"[Open in the gallery](<{gallery_url.rstrip('/')}/videos/{job.id}>)")
    return "\n".join(lines)


class Showcase:
    """Posts approved videos, withdraws deleted ones, and counts votes; the database is the truth."""

    def __init__(self, bot: discord.Client, settings: Settings, repo: ShowcaseRepository, jobs: Repository,
                 media: MediaStore) -> None:
        self.bot = bot
        self.settings = settings
        self.repo = repo
        self.jobs = jobs
        self.media = media
        self.servers: ServerSettings | None = None  # each server's chosen channel, once moderation is set up
        self._posting: set[int] = set()  # jobs whose post is going up now (`post`, `repost`)
        self._counts: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()  # `vote`

    async def channel_for(self, guild_id: int) -> int | None:
        """Where a server's approved videos are posted: the channel its moderators chose, else SHOWCASE_CHANNEL_ID
        when that channel is in this server, else none (the gallery only)."""
        chosen = None if self.servers is None else await self.servers.showcase_channel(guild_id)
        if chosen is not None:
            return chosen
        configured = self.settings.showcase_channel_id
        if configured is not None and self._server_of(configured) == guild_id:
            return configured
        return None

    def _server_of(self, channel_id: int) -> int | None:
        """The server a channel belongs to, as Discord told this client (DISCORD_GUILD_ID when it cannot tell)."""
        channel = self.bot.get_channel(channel_id)
        guild = getattr(channel, "guild", None)
        return guild.id if guild is not None else self.settings.discord_guild_id

    async def set_channel(self, actor: int, guild_id: int, channel_id: int | None) -> None:
        """A server's moderator chooses its showcase channel (None: back to the default)."""
        if self.servers is None:
            raise Denied("Showcase channels cannot be chosen on this bot: moderation is off.")
        await self.servers.set_showcase_channel(actor, guild_id, channel_id)

    async def check_kept(self, job_id: int, guild_id: int) -> None:
        """Refuse (Denied) to approve the server's pending nomination of a job whose video file is gone (removed by
        hand from the media directory, or set aside there): its post and its gallery tile would not play. The
        nomination stays pending, losing nothing: approving it once the file is back posts it, and rejecting it takes
        it off the pending list. Any other case is left to the decision itself, which says why it cannot be made."""
        entry = await self.repo.get(job_id)
        if (entry is None or entry.guild_id != guild_id or entry.state != ShowcaseState.PENDING or entry.job_deleted
                or self.media.has(job_id)):
            return
        log.warning("job %d: its nominated video is not in %s; its approval was refused", job_id, self.media.root)
        raise Denied(f"Job #{job_id} was not approved: its video file is gone from the bot's media folder, so its post "
                     "would not play. It stays nominated: reject it, or approve it again once the file is back.")

    async def post(self, entry: ShowcaseRecord) -> str:
        """Post an approved video to its server's showcase channel; returns what to tell the moderator. A video
        deleted before it goes up is not posted; one deleted while it goes up is taken down again; one whose author
        is blocked is not posted (its ⭐ would take no vote) and approving it again once the block ends posts it.
        One post of a job goes up at a time (`_one_posting`)."""
        return await self._one_posting(entry.job_id, lambda: self._post_now(entry))

    async def _post_now(self, entry: ShowcaseRecord) -> str:
        """`post`, while no other post of the job goes up."""
        if await self._hidden(entry.job_id):
            log.info("showcase entry %d (job %d) approved while its author %d is blocked; not posted", entry.id,
                     entry.job_id, entry.author_id)
            return ("Nothing was posted: its author is blocked (in this server or everywhere), so the video stays "
                    "hidden from the showcase and the web gallery while the block holds; approve it again once the "
                    "block ends to post it.")
        channel_id = await self.channel_for(entry.guild_id)
        if channel_id is None:
            return ("This server has no showcase channel (`/videomod showcase channel` sets one), so it appears in "
                    "the web gallery only.")
        job = await self.jobs.get_job(entry.job_id)
        assert job is not None, f"showcase entry {entry.id} has no job {entry.job_id}"
        try:  # opened now: a deletion from here on cannot take the upload's file away
            video = discord.File(self.media.path(job.id), filename=f"showcase-{job.id}.mp4")
        except FileNotFoundError:
            return await self._not_posted(job.id)
        channel = self.bot.get_partial_messageable(channel_id, guild_id=job.guild_id)
        try:
            message = await channel.send(_post_text(entry, job, self.settings.gallery_public_url), file=video,
                                         view=vote_view(entry.id, entry.votes), suppress_embeds=True,
                                         allowed_mentions=discord.AllowedMentions.none())
        except discord.HTTPException as error:
            return _not_sent(entry, channel_id, error)
        await self.repo.set_post(entry.id, channel_id, message.id)
        if await self._deleted(job.id):  # while it went up: the deletion's withdrawal may have found no post yet
            log.info("job %d was deleted while its showcase post went up; taking the post down", job.id)
            if (await self.withdraw(job.id))[0]:
                return ("Nothing stays posted: the video was deleted while its post went up (by its requester or a "
                        "moderator), so the post was taken down.")
            return ("The video was deleted while its post went up, and the post could not be taken down; delete it "
                    f"by hand: {message.jump_url}")
        return f"Posted in <#{channel_id}>: {message.jump_url}"

    async def _hidden(self, job_id: int) -> bool:
        """Whether the job's approved, undeleted entry is hidden now (its author blocked: storage's `_shown`)."""
        if await self.repo.shown(job_id) is not None:
            return False
        entry = await self.repo.get(job_id)
        return entry is not None and entry.state == ShowcaseState.APPROVED and not entry.job_deleted

    async def _deleted(self, job_id: int) -> bool:
        """Whether the job's result has been deleted (🗑 Delete, by its requester or a moderator)."""
        entry = await self.repo.get(job_id)
        return entry is not None and entry.job_deleted

    async def _not_posted(self, job_id: int) -> str:
        """What to tell the moderator when the approved video's file is gone before its post."""
        if await self._deleted(job_id):
            log.info("job %d was deleted between its approval and its showcase post; nothing was posted", job_id)
            return "Nothing was posted: the video was deleted meanwhile (by its requester or a moderator)."
        log.warning("job %d: its approved video is not in %s; nothing was posted", job_id, self.media.root)
        return "Nothing was posted: its video is no longer kept."

    async def withdraw(self, job_id: int) -> tuple[bool, str]:
        """Delete the showcase post of a deleted job (the gallery already leaves it out): whether no post is left, and
        a sentence for whoever deleted the job ("" when there is nothing to add). A post already deleted in Discord
        (or its channel) is forgotten; one Discord will not delete now (the bot lost the channel, Discord is down) is
        logged, and stays recorded: the deletion of the job goes on without it."""
        entry = await self.repo.get(job_id)
        if entry is None or entry.channel_id is None or entry.message_id is None:
            return True, ""
        post = self._post(entry.guild_id, entry.channel_id, entry.message_id)
        try:
            await post.delete()
        except discord.NotFound:
            log.info("showcase post %d of job %d was already gone", entry.message_id, job_id)
            await self.repo.set_post(entry.id, None, None)
            return True, "Its showcase post was already gone."
        except discord.HTTPException as error:
            log.warning("showcase post %d of job %d could not be taken down (%s %s); delete it in channel %d by hand",
                        entry.message_id, job_id, error.status, error.text, entry.channel_id)
            return False, f"Its showcase post could not be taken down; a moderator can delete it: {post.jump_url}"
        await self.repo.set_post(entry.id, None, None)
        log.info("job %d withdrawn from the showcase channel", job_id)
        return True, ""

    def _post(self, guild_id: int, channel_id: int, message_id: int) -> discord.PartialMessage:
        """A showcase post, by its ids."""
        return self.bot.get_partial_messageable(channel_id, guild_id=guild_id).get_partial_message(message_id)

    async def forget(self, channel_id: int, message_ids: list[int] | None = None) -> None:
        """Discord says these posts of the channel (None: every post in it, the channel deleted) are gone."""
        await self.repo.forget_posts(channel_id, message_ids)

    async def forget_missing_posts(self) -> None:
        """Forget the posts deleted in Discord while the bot was away (Discord tells a bot of no deletion it missed):
        each showcase channel's history is read from its oldest post on record to its newest, 100 messages a
        request, and posts not found there are forgotten; a deleted channel's are all forgotten. A channel Discord
        will not show now (the bot lost it, Discord's trouble) is left as it is, logged, for the next start."""
        for channel_id, message_ids in (await self.repo.posts()).items():
            channel = self.bot.get_partial_messageable(channel_id)
            newest = message_ids[-1]
            seen: set[int] = set()
            try:
                async for message in channel.history(limit=None, after=discord.Object(message_ids[0] - 1),
                                                     oldest_first=True):
                    if message.id > newest:
                        break
                    seen.add(message.id)
            except discord.HTTPException as error:
                if isinstance(error, discord.NotFound) and error.code == UNKNOWN_CHANNEL:
                    log.info("showcase channel %d was deleted while the bot was away", channel_id)
                    await self.forget(channel_id)
                    continue
                log.warning("could not read showcase channel %d to find posts deleted while the bot was away (%s %s); "
                            "the next start looks again", channel_id, error.status, error.text)
                continue
            gone = await self._confirmed_gone(channel, [message for message in message_ids if message not in seen])
            if gone:
                log.info("%d showcase posts of channel %d were deleted while the bot was away", len(gone), channel_id)
                await self.forget(channel_id, gone)

    async def _confirmed_gone(self, channel: discord.PartialMessageable, missing: list[int]) -> list[int]:
        """Of the posts a channel's history did not list, those Discord says are deleted (404), each looked at alone:
        a bot that may see the channel but not read its history gets an empty history, not an error, and that must
        not forget every post. At the first post Discord will not show (403), the rest are left as they are."""
        gone = []
        for message_id in missing:
            try:
                await channel.get_partial_message(message_id).fetch()
            except discord.NotFound:
                gone.append(message_id)
            except discord.HTTPException as error:
                log.warning("could not look at showcase post %d in channel %d (%s %s): the bot may not read its "
                            "history; its posts stay on record", message_id, channel.id, error.status, error.text)
                break
        return gone

    async def repost(self, job_id: int, guild_id: int) -> str | None:
        """Post again the server's approved entry of the job when it has no post standing (`unposted`): what to tell
        the moderator, or None when a post stands."""

        async def again() -> str | None:
            entry = await self.unposted(job_id, guild_id)
            return None if entry is None else await self._post_now(entry)

        return await self._one_posting(job_id, again)

    async def _one_posting(self, job_id: int, work: Callable[[], Awaitable[T]]) -> T | str:
        """Run `work` (a post of the job, or the look for one and a post) unless a post of the job is going up now,
        its post not yet on record: a second moderator approving meanwhile (the first approval's post, or a
        repost) is told so, and nothing is posted twice."""
        if job_id in self._posting:
            return "It is being posted now, as another moderator asked a moment ago."
        self._posting.add(job_id)
        try:
            return await work()
        finally:
            self._posting.discard(job_id)

    async def unposted(self, job_id: int, guild_id: int) -> ShowcaseRecord | None:
        """The server's approved, undeleted entry of the job when it has no post standing in Discord (deleted there,
        or never made: no channel then, or the post failed), which approving it again posts; else None. A post on
        record is looked for; one Discord cannot show now (the bot lost the channel) counts as standing."""
        entry = await self.repo.get(job_id)
        if entry is None or entry.guild_id != guild_id or entry.state != ShowcaseState.APPROVED or entry.job_deleted:
            return None
        if entry.channel_id is None or entry.message_id is None:
            return entry
        try:
            await self._post(entry.guild_id, entry.channel_id, entry.message_id).fetch()
        except discord.NotFound:
            log.info("showcase post %d of job %d was deleted in Discord", entry.message_id, job_id)
            await self.forget(entry.channel_id, [entry.message_id])
            return await self.repo.get(job_id)
        except discord.HTTPException as error:
            log.warning("showcase post %d of job %d could not be looked at (%s %s)", entry.message_id, job_id,
                        error.status, error.text)
        return None

    async def vote(self, interaction: discord.Interaction, entry_id: int, *, no_new_vote: Denied | None = None) -> None:
        """Toggle the member's ⭐ (a member of the entry's server) and show the new count on the button; with
        `no_new_vote` (a blocked member's refusal) only an earlier vote is taken back, and a press that would add one
        raises it. The counts of an entry are shown one at a time, each read just before it is shown (`_count_turn`):
        two members pressing at once could otherwise see the earlier, smaller count land last and stay. A press that
        must wait for another's count to be shown is answered at once (its count follows), so that Discord does not
        give up on it."""
        entry = await self.repo.get_entry(entry_id)
        if entry is not None and entry.guild_id != interaction.guild_id:
            log.warning("user %d voted on showcase entry %d of server %d from server %s", interaction.user.id,
                        entry_id, entry.guild_id, interaction.guild_id)
            raise Denied("This video is in another server's showcase.")
        try:
            voted, votes = await self.repo.toggle_vote(entry_id, interaction.user.id, may_add=no_new_vote is None)
        except ShowcaseError as error:
            if no_new_vote is None or error.code != "may_not_add":
                raise
            raise no_new_vote from None
        turn = self._count_turn(entry_id)
        if turn.locked():
            await interaction.response.defer()
        async with turn:
            now = await self.repo.get_entry(entry_id)
            votes = votes if now is None else now.votes
            try:
                await self._show_count(interaction, vote_view(entry_id, votes))
            except discord.NotFound as error:
                message = interaction.message
                if error.code not in GONE_CODES or message is None:
                    raise
                log.info("showcase post %d of entry %d was deleted in Discord before its vote count was shown",
                         message.id, entry_id)
                await self.forget(message.channel.id, [message.id])
                vote = "Voted for" if voted else "Took back your vote for"
                job = f"job #{entry.job_id}" if entry is not None else "this video"
                await answer_privately(interaction, f"{vote} {job} ({counted(votes, 'vote')}), but this showcase post "
                                                    "has been deleted, so it cannot show the count.")

    def _count_turn(self, entry_id: int) -> asyncio.Lock:
        """The lock an entry's vote counts are read and shown under (kept while some press holds or awaits it)."""
        lock = self._counts.get(entry_id)
        if lock is None:
            lock = self._counts[entry_id] = asyncio.Lock()
        return lock

    @staticmethod
    async def _show_count(interaction: discord.Interaction, view: discord.ui.View) -> None:
        """The post's ⭐ button with its new count, through the press (answered already when it had to wait)."""
        if interaction.response.is_done():
            await interaction.edit_original_response(view=view)
        else:
            await interaction.response.edit_message(view=view)


def _not_sent(entry: ShowcaseRecord, channel_id: int, error: discord.HTTPException) -> str:
    """What to tell the moderator when Discord refused the post: a deleted channel and one the bot lost are logged
    as such (expected: moderators change their server), and so is a thread archived or locked (50083, as 400 or
    403: a showcase thread locked so that only the bot posts, where it may not); anything else with its traceback."""
    if error.code == THREAD_ARCHIVED:
        log.warning("showcase entry %d: thread %d is archived or locked (%s %s)", entry.id, channel_id, error.status,
                    error.text)
        return (f"Posting it to <#{channel_id}> failed: that thread is archived or locked (a moderator can reopen it "
                "and approve the video again, or `/videomod showcase channel` picks another); it is in the web "
                "gallery.")
    if isinstance(error, discord.NotFound | discord.Forbidden):
        log.warning("showcase entry %d: channel %d refused its post (%s %s)", entry.id, channel_id, error.status,
                    error.text)
        why = "that channel no longer exists" if isinstance(error, discord.NotFound) else "the bot cannot post there"
        return (f"Posting it to <#{channel_id}> failed: {why} (`/videomod showcase channel` picks another); it is in "
                "the web gallery.")
    log.error("showcase entry %d: posting to channel %d failed", entry.id, channel_id, exc_info=error)
    return (f"Posting it to <#{channel_id}> failed (Discord did not take it); it is in the web gallery, and approving "
            "it again tries once more.")
