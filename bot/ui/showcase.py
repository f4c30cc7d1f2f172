"""The showcase: approved videos are posted to the showcase channel with the prompt, credit (display name, no ping)
and a ⭐ vote button, and listed in the gallery; a deleted job's post is taken down. Moderators decide with
`/videomod showcase ...` (bot.ui.cogs.showcase).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import discord
from discord.ext import commands

from bot.media import MediaStore
from bot.settings import Settings
from bot.ui.delivery import settings_line
from bot.ui.replies import answer_privately
from bot.ui.text import shown
from storage import Repository, ShowcaseRecord, ShowcaseRepository

log = logging.getLogger(__name__)

RESULTS_COG = "Results"  # the cog that handles result buttons and votes


class VoteButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"showcase:vote:(?P<entry>\d+)"):
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


class Showcase:
    """Posts approved videos, withdraws deleted ones, and counts votes; the database is the truth."""

    def __init__(self, bot: discord.Client, settings: Settings, repo: ShowcaseRepository, jobs: Repository,
                 media: MediaStore) -> None:
        self.bot = bot
        self.settings = settings
        self.repo = repo
        self.jobs = jobs
        self.media = media

    async def post(self, entry: ShowcaseRecord) -> str:
        """Post an approved video to the showcase channel; returns what to tell the moderator."""
        channel_id = self.settings.showcase_channel_id
        if channel_id is None:
            return "SHOWCASE_CHANNEL_ID is not set, so it appears in the web gallery only."
        job = await self.jobs.get_job(entry.job_id)
        assert job is not None, f"showcase entry {entry.id} has no job {entry.job_id}"
        text = "\n".join([f"⭐ **Showcase** · job #{job.id} · by {shown(entry.author_name, 100)}",
                          f"> {shown(job.prompt)}", f"-# {settings_line(job, job.seed)}"])
        path = self.media.path(job.id)
        files = [discord.File(path, filename=f"showcase-{job.id}.mp4")] if path.is_file() else []
        channel = self.bot.get_partial_messageable(channel_id, guild_id=job.guild_id)
        try:
            message = await channel.send(text, files=files, view=vote_view(entry.id, entry.votes), suppress_embeds=True,
                                         allowed_mentions=discord.AllowedMentions.none())
        except discord.HTTPException as error:
            log.exception("showcase entry %d: posting to channel %d failed", entry.id, channel_id)
            return f"Posting it to <#{channel_id}> failed ({error.status} {error.text}); it is in the gallery."
        await self.repo.set_post(entry.id, channel_id, message.id)
        return f"Posted in <#{channel_id}>: {message.jump_url}"

    async def withdraw(self, job_id: int) -> None:
        """Delete the showcase post of a deleted job (the gallery already leaves it out)."""
        entry = await self.repo.get(job_id)
        if entry is None or entry.channel_id is None or entry.message_id is None:
            return
        post = self.bot.get_partial_messageable(entry.channel_id).get_partial_message(entry.message_id)
        try:
            await post.delete()
        except discord.NotFound:
            log.info("showcase post %d of job %d was already gone", entry.message_id, job_id)
        await self.repo.set_post(entry.id, None, None)
        log.info("job %d withdrawn from the showcase channel", job_id)

    async def vote(self, interaction: discord.Interaction, entry_id: int) -> None:
        """Toggle the member's ⭐ and show the new count on the button."""
        _, votes = await self.repo.toggle_vote(entry_id, interaction.user.id)
        await interaction.response.edit_message(view=vote_view(entry_id, votes))
