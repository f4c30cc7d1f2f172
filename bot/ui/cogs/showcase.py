"""`/videomod showcase pending | approve | reject | channel`: a server's moderators review the videos its members
nominated with ⭐, and choose where its approved videos are posted.

Approving an approved video again posts it anew when its post is gone (deleted in Discord by hand, or never made).
A nomination whose video file is gone from the media directory is not approved (its post would not play): the
moderator is told so and it stays pending (`Showcase.check_kept`); the pending list marks it up front.

`ShowcaseGroup` is attached under `/videomod` by the client. Each server's nominations, decisions and showcase
channel are its own: a moderator sees and decides only their server's (another server's job is "not nominated"
here). Rights are checked in code (Discord's permission hint can be changed by server admins); refused attempts are
logged and audited.
"""

from __future__ import annotations

import logging
from typing import Any

import discord
from discord import app_commands

from bot.characters import clipped, shown
from bot.errors import InvalidInput
from bot.moderation.rules import Moderation
from bot.moderation.text import discord_time
from bot.settings import Settings
from bot.ui.permissions import AnyChannel, check_moderator, own_channel, server
from bot.ui.replies import answer_privately
from bot.ui.showcase import Showcase
from storage import MAX_JOB_ID, ShowcaseError, ShowcaseRecord

log = logging.getLogger(__name__)

PENDING_SHOWN = 15  # nominations listed by `/videomod showcase pending`, as many as fit one message
PENDING_COUNTED = 1000  # nominations read to count those not shown ("… and at least N more" beyond)
REASON_CHARS = 300


class ShowcaseGroup(app_commands.Group):
    """`showcase pending | approve | reject | channel | channel-reset`, for a server's moderators; attached under
    `/videomod`."""

    def __init__(self, showcase: Showcase, settings: Settings, moderation: Moderation | None = None) -> None:
        super().__init__(name="showcase", description="Review videos nominated for this server's showcase")
        self.showcase = showcase
        self.settings = settings
        self.moderation = moderation  # the audit log

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """The server's moderators only, checked in code; refused attempts are logged and audited."""
        return await check_moderator(interaction, self.settings, self.moderation, target=None)

    async def _audit(self, interaction: discord.Interaction, action: str, target: str | None,
                     details: dict[str, Any] | None = None) -> None:
        """An audit-log row of the server; a failure to write it is logged, never shown to the moderator."""
        if self.moderation is None:
            return
        try:
            await self.moderation.audit(interaction.user.id, action, target, details, guild_id=server(interaction))
        except Exception:
            log.exception("could not audit %s by user %d", action, interaction.user.id)

    @app_commands.command(name="pending", description="This server's nominations waiting for a decision")
    async def pending(self, interaction: discord.Interaction) -> None:
        entries = await self.showcase.repo.pending(PENDING_COUNTED + 1, guild_id=server(interaction))
        if not entries:
            text = "No nominations are waiting."
        else:
            lines = [_pending_line(entry, self.showcase.media.has(entry.job_id)) for entry in entries[:PENDING_SHOWN]]
            text = clipped(["Waiting for a decision (`/videomod showcase approve job:N`):", *lines],
                           more=len(entries) - len(lines), at_least=len(entries) > PENDING_COUNTED)
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=discord.AllowedMentions.none())

    @app_commands.command(name="approve", description="Show a nominated video in the showcase and the gallery")
    @app_commands.describe(job="The job number of the nominated video")
    async def approve(self, interaction: discord.Interaction, job: app_commands.Range[int, 1, MAX_JOB_ID]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        await self.showcase.check_kept(job, server(interaction))  # a video that would not play is not approved
        try:
            entry = await self.showcase.repo.decide(job, guild_id=server(interaction), approve=True,
                                                    moderator_id=interaction.user.id)
        except ShowcaseError as error:  # approved before: posted again when its post is gone (deleted by hand)
            where = await self.showcase.repost(job, server(interaction)) if error.code == "decided" else None
            if where is None:
                raise
            await self._audit(interaction, "showcase.repost", f"job:{job}")
            await answer_privately(interaction, f"Job #{job} was already approved but had no showcase post. {where}")
            return
        await self._audit(interaction, "showcase.approve", f"job:{job}")
        where = await self.showcase.post(entry)
        await answer_privately(interaction, f"Approved job #{job}. {where}")

    @app_commands.command(name="reject", description="Turn down a nominated video")
    @app_commands.describe(job="The job number of the nominated video", reason="Why (kept in the database)")
    async def reject(self, interaction: discord.Interaction, job: app_commands.Range[int, 1, MAX_JOB_ID],
                     reason: app_commands.Range[str, 1, REASON_CHARS] | None = None) -> None:
        reason = " ".join((reason or "").split()) or None  # a blank one is no reason
        await self.showcase.repo.decide(job, guild_id=server(interaction), approve=False,
                                        moderator_id=interaction.user.id, reason=reason)
        await self._audit(interaction, "showcase.reject", f"job:{job}", {"reason": reason})
        await interaction.response.send_message(f"Rejected job #{job}.", ephemeral=True)

    @app_commands.command(name="channel", description="Post this server's approved videos in a channel")
    @app_commands.describe(channel="A channel of this server; none: show where they go now")
    async def channel(self, interaction: discord.Interaction, channel: AnyChannel | None = None) -> None:
        if channel is not None:
            await self.showcase.set_channel(interaction.user.id, server(interaction), postable(interaction, channel))
        await self._answer_where(interaction, "Set. " if channel else "")

    @app_commands.command(name="channel-reset", description="Forget this server's showcase channel")
    async def channel_reset(self, interaction: discord.Interaction) -> None:
        await self.showcase.set_channel(interaction.user.id, server(interaction), None)
        await self._answer_where(interaction, "Reset. ")

    async def _answer_where(self, interaction: discord.Interaction, head: str) -> None:
        """Where the server's approved videos go now."""
        channel_id = await self.showcase.channel_for(server(interaction))
        where = (f"Approved videos go to <#{channel_id}>." if channel_id is not None else
                 "Approved videos appear in the web gallery only: this server has no showcase channel.")
        await interaction.response.send_message(head + where, ephemeral=True,
                                                allowed_mentions=discord.AllowedMentions.none())


def postable(interaction: discord.Interaction, channel: AnyChannel) -> int:
    """The id of a channel of the server where the bot can post a video (`own_channel`); InvalidInput for a category,
    a forum or a media channel, which hold channels or posts (threads) but take no message of their own: the showcase
    would be set, and every approval's post refused by Discord."""
    channel_id = own_channel(interaction, channel)
    kinds = {discord.ChannelType.category: "a category", discord.ChannelType.forum: "a forum",
             discord.ChannelType.media: "a media channel"}
    if channel.type in kinds:
        raise InvalidInput(f"<#{channel_id}> is {kinds[channel.type]}, where the bot cannot post a message: pick a "
                           "text channel (or a thread) for the showcase.")
    return channel_id


def _pending_line(entry: ShowcaseRecord, kept: bool) -> str:
    """One nomination: job, author, who nominated it and when, and the prompt; one whose video file is gone (not
    `kept`), which approval refuses (`Showcase.check_kept`), says so up front."""
    when = discord_time(entry.nominated_at)
    gone = "" if kept else ("\n  ⚠️ Its video file is gone from the bot's media folder, so it cannot be approved until "
                            "the file is back.")
    return (f"• job #{entry.job_id} by {shown(entry.author_name, 100)} · nominated by <@{entry.nominated_by}> "
            f"{when}{gone}\n  > {shown(entry.prompt, 200)}")
