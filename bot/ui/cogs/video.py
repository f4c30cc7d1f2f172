"""/video, /queue and /cancel: validate options, defer within Discord's 3 s, hand the job to the service."""

import asyncio
import logging
from collections import Counter
from dataclasses import replace

import discord
from discord import app_commands
from discord.ext import commands

from bot.jobs.service import VideoService
from bot.jobs.spec import ASPECTS, SAMPLERS, Requester, VideoOptions
from bot.moderation.policy import MAX_PROMPT_CHARS, PolicyGate
from bot.settings import Settings
from bot.ui.delivery import Delivery, settings_line, shown
from storage import JobRecord, JobState

log = logging.getLogger(__name__)

MAX_DISCORD_INT = 2**53 - 1  # Discord's integer options are limited to ±2^53
MAX_GUIDANCE = 30.0
NEGATIVE_CHARS = 300
QUEUE_SHOWN = 10  # jobs listed by /queue


class VideoCog(commands.Cog, name="Video"):
    """Text-to-video commands; the service decides, delivery shows the outcome."""

    def __init__(self, bot: commands.Bot, service: VideoService, delivery: Delivery, settings: Settings,
                 gate: PolicyGate | None = None) -> None:
        self.bot = bot
        self.service = service
        self.delivery = delivery
        self.settings = settings
        self.gate = gate  # a cheap pre-check so that refusals can be answered privately
        self._starting: Counter[int] = Counter()  # user id -> requests between their pre-check and their submit
        self._turns: dict[int, asyncio.Future[None]] = {}  # user id -> the submit of their newest request
        self.video_command = _video_command(self, settings.max_steps, settings.max_frames)

    async def cog_load(self) -> None:
        """Register /video, whose option ranges come from the settings, next to the class-level commands."""
        self.bot.tree.add_command(self.video_command)

    async def cog_unload(self) -> None:
        """Take /video off the tree with the cog."""
        self.bot.tree.remove_command(self.video_command.name)

    async def video(
        self, interaction: discord.Interaction, *, prompt: str, negative: str | None, seed: int | None,
        steps: int | None, guidance: float | None, frames: int | None, aspect: str | None, private: bool,
        sampler: str | None = None,
    ) -> None:  # fmt: skip
        """The command's options with the server's defaults (else the model's length) filled in, started as usual."""
        defaults = self.settings
        frames = frames or defaults.default_frames or self.service.model.default_frames(defaults.max_frames)
        options = VideoOptions(
            prompt, negative or "", seed, steps or defaults.default_steps, guidance or defaults.default_guidance,
            frames, aspect or "1:1", private=private, sampler=sampler or "ddim",
        )
        await self.start(interaction, options)

    async def start(self, interaction: discord.Interaction, options: VideoOptions) -> None:
        """Defer at once (privately when asked, or when the request will be refused), then submit the job.

        /video, 🔁 Reroll and ✏️ Edit prompt all come through here, so they share the checks, caps, quota and answers.
        """
        requester, user_id = _requester(interaction), interaction.user.id
        hidden = options.private or self._will_refuse(user_id, options.prompt)
        # Counted before any await, so a burst's later requests see the earlier ones in the pre-check; and submitted
        # in arrival order (each waits for the one before), so those predicted to pass the cap are the ones that do.
        self._starting[user_id] += 1
        before, mine = self._turns.get(user_id), asyncio.get_running_loop().create_future()
        self._turns[user_id] = mine
        try:
            hidden = hidden or await self._moderation_refuses(requester, options.cost)
            response = await interaction.response.defer(thinking=True, ephemeral=hidden)
            message_id = None if hidden or response is None else response.message_id
            options = replace(options, private=hidden)  # an ephemeral status message cannot end in a public result
            if before is not None:
                await before
            submitted = await self.service.submit(requester, options)
        finally:
            mine.set_result(None)
            if self._turns.get(user_id) is mine:
                del self._turns[user_id]
            self._starting[user_id] -= 1
            if not self._starting[user_id]:
                del self._starting[user_id]
        log.info("job %d queued for %s at #%d", submitted.job.id, interaction.user.id, submitted.position)
        await self.delivery.job_queued(submitted, message_id)

    def _will_refuse(self, user_id: int, prompt: str) -> bool:
        """True when the service will refuse: down, user at the cap, or prompt against policy (it checks again)."""
        active = len(self.service.jobs_of(user_id)) + self._starting[user_id]
        if not self.service.available or active >= self.settings.queue_per_user_cap:
            return True
        return self.gate is not None and not self.gate.check_prompt(prompt).allowed

    async def _moderation_refuses(self, requester: Requester, cost: int) -> bool:
        """True when a block, a channel rule or the quota will refuse the request (the service checks again)."""
        moderation = self.service.moderation
        if moderation is None:
            return False
        return bool(await moderation.access_refusal(requester) or await moderation.quota_refusal(requester, cost))

    @app_commands.command(name="queue", description="Your videos waiting or rendering, with their places")
    async def queue(self, interaction: discord.Interaction) -> None:
        jobs = self.service.jobs_of(interaction.user.id)
        if not jobs:
            text = "You have no videos queued or rendering. Start one with `/video`."
        else:
            lines = [_queue_line(job, position) for job, position in jobs[:QUEUE_SHOWN]]
            if len(jobs) > QUEUE_SHOWN:
                lines.append(f"… and {len(jobs) - QUEUE_SHOWN} more")
            text = "\n".join(["Your videos:", *lines])
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=discord.AllowedMentions.none())

    @app_commands.command(name="cancel", description="Cancel one of your videos (your newest one by default)")
    @app_commands.describe(job="The job number shown in the status message or by /queue")
    async def cancel(self, interaction: discord.Interaction,
                     job: app_commands.Range[int, 1, MAX_DISCORD_INT] | None = None) -> None:
        record = await self.service.cancel(interaction.user.id, job)
        if record.state == JobState.CANCELLED:
            text = f"Cancelled job #{record.id}"
        else:
            text = f"Stopping job #{record.id}: it ends after the current denoising step"
        await interaction.response.send_message(text, ephemeral=True)


def _video_command(cog: VideoCog, max_steps: int, max_frames: int) -> app_commands.Command:
    """/video with option ranges from the settings (Discord's client enforces them before sending).

    The aspect choices show the loaded model's sizes (the cog is made once the service has loaded it).
    """

    @app_commands.command(name="video", description="Generate a short video from an English prompt")
    @app_commands.describe(
        prompt="What the video shows, in English", negative="What to avoid", seed="Same seed + settings = same video",
        steps=f"Denoising steps, 1–{max_steps} (more is slower)", guidance=f"Prompt strength, 1–{MAX_GUIDANCE:g}",
        frames=f"Frames at 8 fps, 1–{max_frames}", aspect="Frame shape", private="Only you see the result",
        sampler="Denoising method (default DDIM)",
    )
    @app_commands.choices(aspect=[app_commands.Choice(name=f"{name} ({w}×{h})", value=name)
                                  for name, (w, h) in ((name, cog.service.model.size(name)) for name in ASPECTS)],
                          sampler=[app_commands.Choice(name=words, value=name) for name, words in SAMPLERS.items()])
    async def video(
        interaction: discord.Interaction,
        prompt: app_commands.Range[str, 1, MAX_PROMPT_CHARS],
        negative: app_commands.Range[str, None, NEGATIVE_CHARS] | None = None,
        seed: app_commands.Range[int, 0, MAX_DISCORD_INT] | None = None,
        steps: app_commands.Range[int, 1, max_steps] | None = None,
        guidance: app_commands.Range[float, 1.0, MAX_GUIDANCE] | None = None,
        frames: app_commands.Range[int, 1, max_frames] | None = None,
        aspect: str | None = None,
        private: bool = False,
        sampler: str | None = None,
    ) -> None:
        await cog.video(interaction, prompt=prompt, negative=negative, seed=seed, steps=steps, guidance=guidance,
                        frames=frames, aspect=aspect, private=private, sampler=sampler)

    return video


def _requester(interaction: discord.Interaction) -> Requester:
    """Who asked, where, and the token to answer with, as plain values for the service."""
    return Requester(
        user_id=interaction.user.id,
        user_name=interaction.user.display_name,
        channel_id=interaction.channel_id or 0,
        guild_id=interaction.guild_id,
        interaction_token=interaction.token,
        application_id=interaction.application_id,
        upload_limit=interaction.filesize_limit,
        role_ids=tuple(role.id for role in getattr(interaction.user, "roles", ())),  # a Member's; none in DMs
    )


def _queue_line(job: JobRecord, position: int | None) -> str:
    """One /queue entry: job id, where it is, its prompt."""
    where = "rendering" if job.state == JobState.RUNNING or position is None else f"queued #{position}"
    seed = job.seed if job.seed is not None else job.params.get("seed")
    return f"• job #{job.id} · {where} · {shown(job.prompt, 120)}\n  -# {settings_line(job, seed)}"
