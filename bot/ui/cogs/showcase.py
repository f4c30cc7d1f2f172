"""`/videomod showcase pending | approve | reject`: moderators review the videos members nominated with ⭐.

`ShowcaseGroup` is attached under `/videomod` by the client. Its subcommands check moderator rights in code
(Discord's permission hint can be changed by server admins); refused attempts are logged and audited.
"""

from __future__ import annotations

import logging
from typing import Any

import discord
from discord import app_commands

from bot.moderation.rules import Moderation
from bot.settings import Settings
from bot.ui.cogs.moderation import not_a_moderator
from bot.ui.permissions import is_moderator
from bot.ui.replies import answer_privately
from bot.ui.showcase import Showcase
from bot.ui.text import shown
from storage import ShowcaseRecord

log = logging.getLogger(__name__)

PENDING_SHOWN = 15  # nominations listed by `/videomod showcase pending`
MAX_JOB_ID = 2**53 - 1
REASON_CHARS = 300


class ShowcaseGroup(app_commands.Group):
    """`showcase pending | approve | reject`, for moderators; attached under `/videomod`."""

    def __init__(self, showcase: Showcase, settings: Settings, moderation: Moderation | None = None) -> None:
        super().__init__(name="showcase", description="Review videos nominated for the showcase")
        self.showcase = showcase
        self.settings = settings
        self.moderation = moderation  # the audit log

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """Moderators only, checked in code; refused attempts are logged and audited."""
        if is_moderator(interaction.user, self.settings):
            return True
        command = f"/{interaction.command.qualified_name}" if interaction.command else "/videomod showcase"
        log.warning("user %d tried %s without moderator rights", interaction.user.id, command)
        await self._audit(interaction.user.id, command, None, {"refused": "not a moderator"}, allowed=False)
        raise app_commands.CheckFailure(not_a_moderator(command))

    async def _audit(self, actor: int, action: str, target: str | None, details: dict[str, Any] | None = None,
                     *, allowed: bool = True) -> None:
        """An audit-log row; a failure to write it is logged, never shown to the moderator."""
        if self.moderation is None:
            return
        try:
            await self.moderation.audit(actor, action, target, details, allowed=allowed)
        except Exception:
            log.exception("could not audit %s by user %d", action, actor)

    @app_commands.command(name="pending", description="Nominations waiting for a decision, oldest first")
    async def pending(self, interaction: discord.Interaction) -> None:
        entries = await self.showcase.repo.pending(PENDING_SHOWN + 1)
        if not entries:
            text = "No nominations are waiting."
        else:
            lines = [_pending_line(entry) for entry in entries[:PENDING_SHOWN]]
            more = "\n… and more; decide these first." if len(entries) > PENDING_SHOWN else ""
            text = "Waiting for a decision (`/videomod showcase approve job:N`):\n" + "\n".join(lines) + more
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=discord.AllowedMentions.none())

    @app_commands.command(name="approve", description="Show a nominated video in the showcase and the gallery")
    @app_commands.describe(job="The job number of the nominated video")
    async def approve(self, interaction: discord.Interaction, job: app_commands.Range[int, 1, MAX_JOB_ID]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        entry = await self.showcase.repo.decide(job, approve=True, moderator_id=interaction.user.id)
        await self._audit(interaction.user.id, "showcase.approve", f"job:{job}")
        where = await self.showcase.post(entry)
        await answer_privately(interaction, f"Approved job #{job}. {where}")

    @app_commands.command(name="reject", description="Turn down a nominated video")
    @app_commands.describe(job="The job number of the nominated video", reason="Why (kept in the database)")
    async def reject(self, interaction: discord.Interaction, job: app_commands.Range[int, 1, MAX_JOB_ID],
                     reason: app_commands.Range[str, 1, REASON_CHARS] | None = None) -> None:
        await self.showcase.repo.decide(job, approve=False, moderator_id=interaction.user.id, reason=reason)
        await self._audit(interaction.user.id, "showcase.reject", f"job:{job}", {"reason": reason})
        await interaction.response.send_message(f"Rejected job #{job}.", ephemeral=True)


def _pending_line(entry: ShowcaseRecord) -> str:
    """One nomination: job, author, who nominated it and when, and the prompt."""
    when = discord.utils.format_dt(entry.nominated_at, "R")
    return (f"• job #{entry.job_id} by {shown(entry.author_name, 100)} · nominated by <@{entry.nominated_by}> "
            f"{when}\n  > {shown(entry.prompt, 200)}")
