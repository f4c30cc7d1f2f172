"""/video, /queue and /cancel: defer within Discord's 3 s, then one call to the service decides the request."""

import inspect
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.characters import MESSAGE_CHARS, clip, clipped, shown
from bot.errors import Refused
from bot.gpu.models import ASPECTS, DEFAULT_ASPECT
from bot.gpu.styles import NONE
from bot.jobs.admission import blank
from bot.jobs.cancels import Here
from bot.jobs.events import Submitted
from bot.jobs.service import VideoService
from bot.jobs.spec import JobSpec, Requester
from bot.moderation.policy import MAX_PROMPT_CHARS
from bot.moderation.servers import MAX_NEGATIVE_CHARS, Presets, ServerSettings
from bot.settings import Settings
from bot.ui.cogs import MAX_CHOICES, MAX_DISCORD_INT
from bot.ui.delivery import Delivery
from bot.ui.in_flight import KeptPresses
from bot.ui.permissions import audit_on_job, moderates
from bot.ui.replies import answer_error, answer_refusal, carried_out
from bot.ui.status import eta_words, settings_line
from storage import MAX_JOB_ID, JobRecord, JobState
from t2v.config import SamplerDefaults
from t2v.request import LIMITS, SAMPLER_NAMES
from t2v.sizes import frame_text

log = logging.getLogger(__name__)

QUEUE_SHOWN = 10  # jobs listed by /queue, as many as fit one message
CHOICE_NAME_CHARS = 100  # Discord's limit on the name it shows of a choice
VIDEO_COG = "Video"
SAMPLER_WORDS = {"ddim": "DDIM (ModelScope's)", "dpmpp-2m": "DPM-Solver++ 2M (good at 20–25 steps)"}  # t2v's names


class VideoCog(commands.Cog, name=VIDEO_COG):
    """Text-to-video commands; the service decides, delivery shows the outcome."""

    def __init__(self, bot: commands.Bot, service: VideoService, delivery: Delivery, settings: Settings,
                 servers: ServerSettings | None = None) -> None:
        self.bot = bot
        self.service = service
        self.delivery = delivery
        self.settings = settings
        self.servers = servers  # each server's presets; None: the operator's defaults only
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
        sampler: str | None = None, style: str | None = None,
    ) -> None:  # fmt: skip
        """The command's request, each option left out taken from the server's presets, then the operator's defaults
        (else the model's length), started as `start` starts one; `style:none` is no style even where the presets name
        one, and `negative:none` no negative prompt (`_negative`). The presets and the styles on in the server (a
        database read, the first /video in a server after a start) are read once the interaction is deferred, so a
        slow disk costs no "did not respond". A blank prompt is refused as the gate refuses one (t2v makes no request
        of it)."""
        if blank(prompt):
            await self.refuse_blank(interaction, prompt, negative or "", private=private)
            return

        async def submit(requester: Requester) -> Submitted:  # InvalidRequest (a bad value) is answered as an error
            defaults, model = self.settings, self.service.model
            preset = await self.servers.presets(interaction.guild_id) if self.servers is not None else Presets()
            fields = {"negative_prompt": _negative(negative, preset.negative), "seed": seed,
                      "steps": steps or preset.steps or defaults.default_steps,
                      "guidance": guidance or preset.guidance or defaults.default_guidance,
                      "sampler": sampler or preset.sampler,
                      "frames": (frames or preset.frames
                                 or model.video_frames(defaults.default_frames, defaults.max_frames))}
            spec = JobSpec.video(prompt, aspect=aspect or preset.aspect or DEFAULT_ASPECT, sizes=model.size,
                                 private=private, style=await self._style(interaction.guild_id, style, preset.style),
                                 **{name: value for name, value in fields.items() if value is not None})
            return await self.service.submit(requester, spec)

        await self._decide(interaction, private, submit)

    async def _style(self, guild_id: int | None, chosen: str | None, preset: str | None) -> str | None:
        """The style asked for, as typed (admission names it in any case, and checks it), else the server's default
        style while it is on there; a blank one (spaces, zero-width characters) is left out, `none` (in any case) is no
        style."""
        name = (chosen or "").strip()
        if not blank(name):
            return None if name.lower() == NONE else name
        if preset is not None and preset in await self.service.styles.available(guild_id):
            return preset
        return None

    async def style_choices(self, interaction: discord.Interaction, typed: str) -> list[app_commands.Choice[str]]:
        """/video's style autocomplete: the styles on in this server whose name or description holds `typed`, and
        `none` where the server has a default style."""
        styles = self.service.styles
        typed = typed.strip().lower()
        names = [name for name in await styles.available(interaction.guild_id)
                 if typed in name or typed in styles.offered[name].lower()]
        choices = [app_commands.Choice(name=_choice_name(name, styles.offered[name]), value=name) for name in names]
        preset = await self.servers.presets(interaction.guild_id) if self.servers is not None else Presets()
        if preset.style is not None and typed in NONE:
            choices.insert(0, app_commands.Choice(name=f"{NONE} — no style (this server's default is {preset.style})",
                                                  value=NONE))
        return choices[:MAX_CHOICES]

    async def start(self, interaction: discord.Interaction, private: bool,
                    spec: Callable[[Requester], Awaitable[JobSpec]], *, typed: str | None = None) -> None:
        """Defer at once (privately for `private`), then make the job (`spec`, which reads the job a button names: a
        slow database costs no "This interaction failed") and submit it; the service's one verdict decides the answer.

        🔁 Reroll, ✏️ Edit prompt and ⬆️ Upscale come through here, and /video through `_decide` as well, so they share
        the checks, caps, quota and answers. A refusal, a Denied of `spec`, or an error, is answered privately (a
        public placeholder is replaced by a private answer); with `typed` (the prompt typed into a form, which keeps
        no copy of it) the answer quotes the prompt, unless it is blank.
        """
        kept = prompt_kept(typed) if typed is not None and not blank(typed) else ""

        async def submit(requester: Requester) -> Submitted:
            return await self.service.submit(requester, await spec(requester))

        await self._decide(interaction, private, submit, kept)

    async def precheck(self, interaction: discord.Interaction, spec: JobSpec) -> None:
        """Raise Refused when `spec` would be refused whatever prompt it is given (blocked, over quota, ...), before a
        form asks the presser for one; nothing is written."""
        await self.service.precheck(_requester(interaction), spec)

    async def refuse_blank(self, interaction: discord.Interaction, prompt: str, negative: str = "", *,
                           private: bool) -> None:
        """Refuse a blank prompt of /video or ✏️ Edit prompt, which makes no spec, as admission refuses any blank
        prompt (logged, nothing charged), answered as a refusal of `start` is."""
        await self._decide(interaction, private,
                           lambda requester: self.service.refuse_blank(requester, prompt, negative, private=private))

    async def _decide(self, interaction: discord.Interaction, private: bool,
                      submit: Callable[[Requester], Awaitable[Submitted]], after_refusal: str = "") -> None:
        """Defer at once (privately when asked), then let `submit` queue the job or refuse it (`after_refusal` ends
        the refusal), and answer. A refusal, and an error (a bug, the database down), are told to the presser alone:
        a public placeholder is deleted first, so the channel is left neither the error nor a placeholder thinking
        for ever. A job queued after the bot was removed from its server meanwhile is cancelled as that server's
        other jobs were (the removal's cancels may have looked before it was queued), and nothing is answered there."""
        guild_id = interaction.guild_id
        member = guild_id is not None and self.bot.get_guild(guild_id) is not None  # before any await
        response = await interaction.response.defer(thinking=True, ephemeral=private)
        message_id = None if private or response is None else response.message_id
        try:
            submitted = await submit(_requester(interaction))
        except Refused as refused:
            log.info("request of user %d refused (%s)", interaction.user.id, refused.logged)
            await answer_refusal(interaction, refused.message + after_refusal, placeholder_public=not private)
            return
        except Exception as error:  # a bug, the database down: the presser is told, privately, as of a refusal
            await answer_error(interaction, error, _asked(interaction), placeholder_public=not private,
                               after=after_refusal)
            return
        if member and self.bot.get_guild(guild_id) is None:  # removed since: no await between the push and here
            queued, running = await self.service.cancel_server(guild_id)
            log.info("job %d was queued as the bot was removed from server %d: cancelled %d queued and %d running "
                     "jobs of it", submitted.job.id, guild_id, queued, running)
            return
        log.info("job %d queued for %s at #%d", submitted.job.id, interaction.user.id, submitted.position)
        await self.delivery.job_queued(submitted, message_id)

    @app_commands.command(name="queue", description="Your videos waiting or rendering, with their places")
    async def queue(self, interaction: discord.Interaction) -> None:
        jobs = self.service.jobs_of(interaction.user.id)
        if not jobs:
            text = "You have no videos queued or rendering. Start one with `/video`."
        else:
            now = self.delivery.now()
            etas = {job.id: eta for job, _, eta in self.service.places()}
            lines = [_queue_line(job, position, etas.get(job.id), now) for job, position in jobs[:QUEUE_SHOWN]]
            text = clipped(["Your videos:", *lines], more=len(jobs) - len(lines))
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=discord.AllowedMentions.none())

    @app_commands.command(name="cancel", description="Cancel one of your videos (your newest one here by default)")
    @app_commands.describe(job="The job number shown in the status message or by /queue")
    async def cancel(self, interaction: discord.Interaction,
                     job: app_commands.Range[int, 1, MAX_JOB_ID] | None = None) -> None:
        await self.cancel_job(interaction, job)

    async def cancel_job(self, interaction: discord.Interaction, job_id: int | None) -> None:
        """Cancel the presser's job (`None`: their newest in this server, or in direct messages when used there), or
        as a moderator `job_id` of a member of this server (audited; its requester is told), and say so privately;
        the service refuses others' jobs.

        Deferred at once, as /video is: the cancel waits for the job's status to say so (an edit Discord may hold up
        on a busy server) and for the database, and an answer past Discord's 3 s would fail the command."""
        await interaction.response.defer(thinking=True, ephemeral=True)
        here = Here(interaction.guild_id)
        record = await self.service.cancel(interaction.user.id, job_id, here,
                                           moderates=lambda job: moderates(interaction, self.settings, job.guild_id))
        where, told = here.place_of(record) and f" ({here.place_of(record)})", ""
        if record.user_id != interaction.user.id:  # a moderator's cancel
            await audit_on_job(self.service.moderation, interaction.user.id, "job.cancel", record)
            where, told = f" of <@{record.user_id}>", "; they are told a moderator cancelled it"
        if record.state == JobState.CANCELLED:
            text = f"✖ Cancelled job #{record.id}{where}{told}."
        else:
            text = f"Stopping job #{record.id}{where}: it ends after the current denoising step{told}."
        await interaction.edit_original_response(content=text, allowed_mentions=discord.AllowedMentions.none())


class CancelButton(KeptPresses, discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"video:cancel:(?P<job>\d+)"):
    """✖ Cancel on a queued or rendering job's status: /cancel for that job, by its requester or a moderator of its
    server (after restarts too)."""

    def __init__(self, job_id: int) -> None:
        super().__init__(discord.ui.Button(emoji="✖️", label="Cancel", style=discord.ButtonStyle.secondary,
                                           custom_id=f"video:cancel:{job_id}"))
        self.job_id = job_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item[Any],
                             match: re.Match[str]) -> "CancelButton":
        """Rebuild the button from its custom_id."""
        return cls(int(match["job"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        """The Video cog cancels; a refusal (not yours, already finished) is answered privately."""
        await carried_out(interaction, VIDEO_COG, VideoCog, lambda cog: cog.cancel_job(interaction, self.job_id),
                          f"Cancel of job #{self.job_id}")


def cancel_view(job: JobRecord) -> discord.ui.View:
    """The ✖ Cancel button under a job's status while it waits or renders."""
    view = discord.ui.View(timeout=None)
    view.add_item(CancelButton(job.id))
    return view


def _video_command(cog: VideoCog, max_steps: int, max_frames: int) -> app_commands.Command:
    """/video with option ranges from the settings (Discord's client enforces them before sending).

    The aspect choices show the loaded model's sizes, and the style option is there only when the operator listed
    styles (the cog is made once the service has loaded the model and its styles).
    """
    min_guidance, max_guidance = LIMITS["guidance"]
    styled = bool(cog.service.styles.offered)
    descriptions = {
        "prompt": "What the video shows, in English",
        "negative": "What to avoid; none: no negative prompt, not even this server's default",
        "seed": "Same seed + settings = same video", "steps": f"Denoising steps, 1–{max_steps} (more is slower)",
        "guidance": f"Prompt strength, 1–{max_guidance:g}",
        "frames": f"Frames at {SamplerDefaults.fps} fps, 1–{max_frames}", "aspect": "Frame shape",
        "private": "Only you see the result", "sampler": "Denoising method (default DDIM)",
        **({"style": "A look for the video (a LoRA style); pick from the list"} if styled else {}),
    }

    async def video(
        interaction: discord.Interaction,
        prompt: app_commands.Range[str, 1, MAX_PROMPT_CHARS],
        negative: app_commands.Range[str, None, MAX_NEGATIVE_CHARS] | None = None,
        seed: app_commands.Range[int, 0, MAX_DISCORD_INT] | None = None,
        steps: app_commands.Range[int, 1, max_steps] | None = None,
        guidance: app_commands.Range[float, min_guidance, max_guidance] | None = None,
        frames: app_commands.Range[int, 1, max_frames] | None = None,
        aspect: str | None = None,
        private: bool = False,
        sampler: str | None = None,
        style: app_commands.Range[str, 1, 40] | None = None,
    ) -> None:
        await cog.video(interaction, prompt=prompt, negative=negative, seed=seed, steps=steps, guidance=guidance,
                        frames=frames, aspect=aspect, private=private, sampler=sampler, style=style)

    if not styled:  # an option that could only be refused: discord.py reads the options from the signature
        signature = inspect.signature(video)
        video.__signature__ = signature.replace(parameters=[p for p in signature.parameters.values()
                                                            if p.name != "style"])
    choices = app_commands.choices(
        aspect=[app_commands.Choice(name=f"{name} ({frame_text(w, h)})", value=name)
                for name, (w, h) in ((name, cog.service.model.size(name)) for name in ASPECTS)],
        sampler=[app_commands.Choice(name=SAMPLER_WORDS.get(name, name), value=name) for name in SAMPLER_NAMES])
    command = app_commands.command(name="video", description="Generate a short video from an English prompt")(
        choices(app_commands.describe(**descriptions)(video)))
    if styled:
        command.autocomplete("style")(cog.style_choices)
    return command


def _negative(typed: str | None, preset: str | None) -> str:
    """A /video's negative prompt: as typed; `none` (in any case) for none, even where the server has a default; left
    out or blank (nothing but spaces and invisible characters, such as zero-width spaces, which would render as
    none), the server's default, else none."""
    if typed is None or blank(typed):
        return preset or ""
    return "" if typed.strip().lower() == NONE else typed


def _choice_name(name: str, description: str) -> str:
    """'name — description', as Discord shows a choice (cut to CHOICE_NAME_CHARS)."""
    return clip(f"{name} — {description}" if description else name, CHOICE_NAME_CHARS)


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
        parent_channel_id=interaction.channel.parent_id if isinstance(interaction.channel, discord.Thread) else None,
    )


def prompt_kept(prompt: str) -> str:
    """The end of an answer that quotes back a prompt typed into a form (which keeps no copy of it), whole: its
    escapes ("\\*" shows "*") make it longer than the MAX_PROMPT_CHARS typed, and a quote cut short would lose it."""
    return f"\nYour prompt, to try again:\n> {shown(prompt, MESSAGE_CHARS)}"


def _asked(interaction: discord.Interaction) -> str:
    """What the interaction asked, for the log: its command (/video) or its button or form (video:reroll:42)."""
    command = interaction.command
    if command is not None:
        return f"/{command.qualified_name}"
    return str((interaction.data or {}).get("custom_id", "a request"))


def _queue_line(job: JobRecord, position: int | None, eta: datetime | None, now: datetime) -> str:
    """One /queue entry: job id, where it is (with its ETA while it waits), its prompt."""
    where = "rendering" if job.state == JobState.RUNNING or position is None else f"queued #{position}"
    if where != "rendering" and eta is not None:
        where += f" · ETA {eta_words(eta, now)}"
    seed = job.seed if job.seed is not None else job.params.get("seed")
    return f"• job #{job.id} · {where} · {shown(job.prompt, 120)}\n  -# {settings_line(job, seed)}"
