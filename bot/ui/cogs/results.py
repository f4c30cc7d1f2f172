"""Buttons under every result — 🔁 Reroll, ✏️ Edit prompt, ⬆️ Upscale, ⭐ Showcase, 🗑 Delete — working after restarts.

Each button is a `DynamicItem` whose custom_id carries the job id (`video:reroll:42`); everything else comes from
the database, so a message posted before a restart still works. Who may press what:
- 🔁 and ✏️: the requester only (the new job counts against their caps and quota); others are told "not yours".
  On an upscale they upscale its source again (new seed, or the edited prompt). ✏️ opens its form only when the new
  job would not be refused whatever prompt is typed (a block, the quota, a source gone: `Admission.precheck`).
  A second 🔁 (or ⬆️) press while the job the first made is queued or rendering asks for nothing: its presser is told
  where that job is (bot.jobs.admission, in the presser's admission turn, so a double press cannot make two).
- ⬆️ (only with UPSCALE_MODEL; not on private results or on upscales): the requester only; re-renders the kept MP4
  with the upscaler at its size (bot.jobs.upscale), through /video's queue, caps and quota (it counts UPSCALE_COST).
- ⭐: any member may nominate a public, finished result (one nomination per video); moderators decide with
  `/videomod showcase`. Private results and those made in direct messages have no ⭐ button, and a nomination of one
  is refused anyway. A blocked member may neither nominate nor vote on a showcase post (told as /video tells them),
  but may take back a vote given before.
- 🗑: the requester or a moderator of the job's server, after a private confirmation (`DeleteChoice`: a public
  result asks in a message only the presser sees; a private one swaps its buttons for the choice); the message goes,
  its status says "Deleted" instead of linking to it (where it can still be edited), the job is marked deleted, its
  kept MP4 is removed and it leaves the showcase channel and the gallery. A deleted job cannot be rerolled, edited
  or nominated.
🔁, ⬆️ and a ✏️ form's submission answer Discord first, then read the job's row: a slow database costs no "This
interaction failed". Their "thinking" placeholder is as private as the pressed message: ephemeral on a private result,
not elsewhere (a private result sent to its requester's DMs is theirs alone); a job's button sent from a message that
does not match it is refused. ✏️'s press reads the row before its form, which cannot follow a deferral.
The ✏️ form is answered from what its submission carries (the job id in its custom_id, the prompt typed), never from
discord.py's memory of it (`ResultsCog.on_interaction`): a form opened before a restart, left open for hours, or
opened twice still starts its job; someone else's submission of it is refused like their ✏️ press. Any answer to a
submission that starts no job quotes the typed prompt back, so it is not lost (its result deleted meanwhile, say).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import discord
from discord.ext import commands

from bot.errors import Denied
from bot.jobs.admission import blank
from bot.jobs.spec import UPSCALE, JobSpec, Requester
from bot.jobs.upscale import upscale_spec
from bot.media import MediaStore
from bot.moderation.policy import MAX_PROMPT_CHARS
from bot.moderation.rules import Moderation
from bot.moderation.text import BUTTONS, block_message
from bot.settings import Settings
from bot.ui.cogs.video import VideoCog, prompt_kept
from bot.ui.discord_errors import THREAD_ARCHIVED
from bot.ui.in_flight import KeptPresses
from bot.ui.permissions import audit_on_job, is_moderator, moderates
from bot.ui.replies import answer_error, answer_privately, carried_out, handler
from bot.ui.showcase import RESULTS_COG, Showcase
from storage import JobRecord, JobState, Repository, ShowcaseError, ShowcaseRepository
from t2v.sizes import frame_text

log = logging.getLogger(__name__)

# action -> (emoji, label, style); the order is the order of the buttons
ACTIONS: dict[str, tuple[str, str, discord.ButtonStyle]] = {
    **{action: (*BUTTONS[action].split(" ", 1), style)  # as refusals name them (bot.moderation.text.BUTTONS)
       for action, style in (("reroll", discord.ButtonStyle.primary), ("edit", discord.ButtonStyle.secondary),
                             ("upscale", discord.ButtonStyle.secondary))},
    "showcase": ("⭐", "Showcase", discord.ButtonStyle.secondary),
    "delete": ("🗑️", "Delete", discord.ButtonStyle.danger),
}
HIDDEN_STAYS = ("The bot may not see this channel, so the message stays: a moderator can delete it, or let the bot see "
                "the channel.")  # after 🗑 Delete, why its message is left
THREAD_STAYS = ("This thread is archived or locked, so the message stays: a moderator can reopen the thread and "
                "delete it.")
EDIT_FORM = re.compile(r"video:edit-prompt:(?P<job>\d+)")  # the custom_id of a job's ✏️ form
PROMPT_FIELD = "prompt"  # the custom_id of the form's one text input


class ResultButton(KeptPresses, discord.ui.DynamicItem[discord.ui.Button[Any]],
                   template=r"video:(?P<action>reroll|edit|upscale|showcase|delete):(?P<job>\d+)"):
    """One button of a result; pressing it hands the action and job id to the Results cog."""

    def __init__(self, action: str, job_id: int) -> None:
        emoji, label, style = ACTIONS[action]
        super().__init__(discord.ui.Button(emoji=emoji, label=label, style=style, custom_id=f"video:{action}:{job_id}"))
        self.action = action
        self.job_id = job_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item[Any],
                             match: re.Match[str]) -> ResultButton:
        """Rebuild the button from its custom_id (after a restart, too)."""
        return cls(match["action"], int(match["job"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        """Let the Results cog handle the press; answer privately if it is not loaded."""
        cog = await handler(interaction, RESULTS_COG, ResultsCog)
        if cog is not None:
            await cog.press(interaction, self.action, self.job_id)


class DeleteChoice(KeptPresses, discord.ui.DynamicItem[discord.ui.Button[Any]],
                   template=r"video:delete-(?P<choice>yes|no):(?P<job>\d+):(?P<message>\d+)"):
    """"Delete for good" or "Keep it" after a 🗑 press; `message` is the public result's id, 0 for a private result,
    which carries the choice itself."""

    def __init__(self, choice: str, job_id: int, message_id: int) -> None:
        label, style = ("Delete for good", discord.ButtonStyle.danger) if choice == "yes" else (
            "Keep it", discord.ButtonStyle.secondary)
        super().__init__(discord.ui.Button(label=label, style=style,
                                           custom_id=f"video:delete-{choice}:{job_id}:{message_id}"))
        self.choice, self.job_id, self.message_id = choice, job_id, message_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item[Any],
                             match: re.Match[str]) -> DeleteChoice:
        """Rebuild the choice from its custom_id (after a restart, too)."""
        return cls(match["choice"], int(match["job"]), int(match["message"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        """Let the Results cog carry out the choice; answer privately if it is not loaded."""
        yes = self.choice == "yes"
        await carried_out(interaction, RESULTS_COG, ResultsCog,
                          lambda cog: cog.delete_choice(interaction, yes, self.job_id, self.message_id),
                          f"Delete of job #{self.job_id}")


def delete_choices(job_id: int, message_id: int) -> discord.ui.View:
    """The two buttons of a delete confirmation."""
    view = discord.ui.View(timeout=None)
    for choice in ("yes", "no"):
        view.add_item(DeleteChoice(choice, job_id, message_id))
    return view


def result_view(job: JobRecord, upscale: bool = False) -> discord.ui.View:
    """The buttons under a finished video; private results get no ⭐ and no ⬆️, those made in direct messages no ⭐ (a
    showcase is a server's), upscales no ⬆️, and ⬆️ needs `upscale`."""
    view = discord.ui.View(timeout=None)
    for action in ACTIONS:
        if action == "showcase" and (job.private or job.guild_id is None):
            continue
        if action == "upscale" and (not upscale or job.private or job.params.get("kind") == UPSCALE):
            continue
        view.add_item(ResultButton(action, job.id))
    return view


class EditPromptModal(discord.ui.Modal):
    """A form pre-filled with the job's prompt; its submission starts a new job with the same settings.

    It is sent finished, so that discord.py keeps none: the cog answers every submission of it from its custom_id
    (`ResultsCog.on_interaction`). discord.py would forget the form at a restart or after its timeout, and one form's
    timeout would drop a later form of the same job (its modals are kept by custom_id alone), leaving the submission
    unanswered ("Something went wrong") and the typed prompt lost.
    """

    def __init__(self, job: JobRecord) -> None:
        super().__init__(title=f"Edit prompt · job #{job.id}", timeout=None, custom_id=f"video:edit-prompt:{job.id}")
        self.add_item(discord.ui.TextInput(
            label="Prompt", style=discord.TextStyle.paragraph, default=job.prompt[:MAX_PROMPT_CHARS],
            max_length=MAX_PROMPT_CHARS, custom_id=PROMPT_FIELD,
        ))
        self.stop()  # finished: send_modal keeps no finished form


def _typed(data: Any, custom_id: str) -> str | None:
    """The value of a submitted form's text input `custom_id` (in an action row or a label), or None."""
    if isinstance(data, list):
        return next((value for part in data if (value := _typed(part, custom_id)) is not None), None)
    if not isinstance(data, dict):
        return None
    if data.get("custom_id") == custom_id and isinstance(data.get("value"), str):
        return data["value"]
    return _typed([data.get("components"), data.get("component")], custom_id)


class ResultsCog(commands.Cog, name=RESULTS_COG):
    """Handles the result buttons and the showcase votes; the database says what each press may do."""

    def __init__(self, video: VideoCog, repo: Repository, showcase: Showcase, media: MediaStore,
                 settings: Settings, moderation: Moderation | None = None) -> None:
        self.video = video
        self.repo = repo
        self.showcase = showcase
        self.showcase_repo: ShowcaseRepository = showcase.repo
        self.media = media
        self.settings = settings
        self.moderation = moderation  # the audit log, for moderators deleting others' results

    async def press(self, interaction: discord.Interaction, action: str, job_id: int) -> None:
        """Run one button action; refusals and bugs end in a private answer."""
        try:
            if action == "reroll":
                await self.start_from(interaction, job_id)
            elif action == "edit":  # refused now rather than after the member typed a prompt
                job = await self._job(interaction, job_id, owner_only=True)
                await self.video.precheck(interaction, await self._next_spec(interaction, job, job.prompt))
                await interaction.response.send_modal(EditPromptModal(job))
            elif action == "upscale":
                await self.upscale(interaction, job_id)
            elif action == "showcase":
                await self._nominate(interaction, job_id)
            else:
                await self._delete(interaction, job_id)
        except Exception as error:
            await answer_error(interaction, error, f"{ACTIONS[action][1]} of job #{job_id}")

    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """A ✏️ form submitted (`EditPromptModal`): the job it names, with the prompt typed; only its requester may."""
        data = interaction.data or {}
        match = EDIT_FORM.fullmatch(str(data.get("custom_id", "")))
        if interaction.type is not discord.InteractionType.modal_submit or match is None:
            return
        job_id, prompt = int(match["job"]), _typed(data, PROMPT_FIELD) or ""
        try:
            await self.start_from(interaction, job_id, prompt=prompt)
        except Exception as error:  # not deferred (Discord refused the deferral, say): the typed prompt is not lost
            await answer_error(interaction, error, f"edit prompt of job #{job_id}",
                               after=prompt_kept(prompt) if prompt.strip() else "")

    async def start_from(self, interaction: discord.Interaction, job_id: int, *, prompt: str | None = None) -> None:
        """A new job with the settings of `job_id` and a new seed (and a new prompt, when edited; a blank one is
        refused as /video's is). Deferred before the job's row is read (`VideoCog.start`), as the pressed message
        shows it (`_private_result`)."""
        action = "edit" if prompt is not None else "reroll"

        async def spec(requester: Requester) -> JobSpec:
            job = await self._job(interaction, job_id, owner_only=True)
            if prompt is not None and blank(prompt):
                await self.video.service.refuse_blank(requester, prompt, job.negative_prompt, private=job.private)
            made = _as_shown(interaction, await self._next_spec(interaction, job, prompt), job_id, action)
            log.info("user %d starts a new job from job %d (%s)", interaction.user.id, job_id,
                     "edited prompt" if prompt is not None else "reroll")
            return made

        await self.video.start(interaction, _private_result(interaction), spec, typed=prompt)

    async def _next_spec(self, interaction: discord.Interaction, job: JobRecord, prompt: str | None = None) -> JobSpec:
        """What 🔁 Reroll (or ✏️ Edit prompt, with `prompt`) of `job` asks for: its settings with a new seed; for an
        upscale, an upscale of the same source again. Either renders at the size the models loaded now give its
        aspect: a job made before T2V_MODEL was switched keeps its aspect, not the old model's size."""
        if job.params.get("kind") == UPSCALE:
            return await self._upscale_spec(interaction, int(job.params["source_job"]), prompt)
        return self.video.service.sized(JobSpec.of_job(job).again(job.id, prompt))

    async def upscale(self, interaction: discord.Interaction, job_id: int) -> None:
        """Upscale the requester's own public, finished video (its kept MP4); the job is started like /video, deferred
        before the job's row is read."""
        async def spec(requester: Requester) -> JobSpec:
            made = _as_shown(interaction, await self._upscale_spec(interaction, job_id), job_id, "upscale")
            request = made.request
            log.info("user %d upscales job %d to %s", interaction.user.id, job_id,
                     frame_text(request.width, request.height))
            return made

        await self.video.start(interaction, _private_result(interaction), spec)

    async def _upscale_spec(self, interaction: discord.Interaction, job_id: int, prompt: str | None = None) -> JobSpec:
        """An upscale of the presser's own public, finished and kept video `job_id` (with `prompt`, when edited);
        Denied otherwise."""
        model = self.video.service.model
        if not model.has_upscaler:
            raise Denied("Upscaling is off: no upscaler is configured on this bot.")
        job = await self._job(interaction, job_id, owner_only=True)
        if job.private:
            raise Denied(f"Job #{job_id} is private: private videos are not kept, so they cannot be upscaled.")
        if job.params.get("kind") == UPSCALE:
            raise Denied(f"Job #{job_id} is already an upscale.")
        if job.state != JobState.DONE or not self.media.has(job_id):
            raise Denied(f"The video of job #{job_id} is no longer kept, so it cannot be upscaled.")
        return upscale_spec(job, model, self.media.path(job_id), strength=self.settings.upscale_strength,
                            cost=self.settings.upscale_cost, prompt=prompt)

    async def _job(self, interaction: discord.Interaction, job_id: int, *, owner_only: bool) -> JobRecord:
        """The job behind a button, or Denied when it is gone, deleted, or (owner_only) someone else's."""
        job = await self.repo.get_job(job_id)
        if job is None:
            raise Denied(f"Job #{job_id} no longer exists.")
        if owner_only and job.user_id != interaction.user.id:
            raise Denied(f"Job #{job_id} is not yours; only the person who asked for it can do that.")
        if job.deleted_at is not None:
            raise Denied(f"Job #{job_id} was deleted.")
        return job

    async def _nominate(self, interaction: discord.Interaction, job_id: int) -> None:
        """Put the video up for the showcase, keeping its MP4 from the message if it was not kept on delivery; refused
        to a member blocked in the server (or everywhere).

        The nomination's write decides against a 🗑 Delete of the same job (storage's `nominate` refuses a job marked
        deleted, and a deletion marks the job before it removes the file): nominated first, the deletion removes the
        file after; deleted first, while the MP4 was being fetched from the message, the deletion found no file to
        remove, so the nomination removes the one it fetched."""
        job = await self._job(interaction, job_id, owner_only=False)
        if job.private:
            raise Denied(f"Job #{job_id} is private; private videos never go to the showcase.")
        await self._refuse_blocked(interaction, f"nomination of job {job_id}")  # it asks the moderators' time
        await interaction.response.defer(ephemeral=True, thinking=True)
        fetched = not self.media.has(job_id) and await self.showcase_repo.get(job_id) is None  # else nominate says
        if fetched:
            await self._keep_from_message(interaction.message, job_id)
        try:
            await self.showcase_repo.nominate(job_id, interaction.user.id)
        except ShowcaseError as error:
            if fetched and error.code == "deleted":
                log.info("job %d was deleted while its video was fetched for its nomination; removing it", job_id)
                await self.media.delete(job_id)
            raise
        await answer_privately(interaction, f"⭐ Job #{job_id} is nominated for the showcase; the moderators decide.")

    async def _refuse_blocked(self, interaction: discord.Interaction, what: str) -> None:
        """Denied, with the words /video's refusal has, when the presser is blocked in this server or everywhere."""
        refusal = await self._block_refusal(interaction)
        if refusal is not None:
            log.info("user %d is blocked; %s refused", interaction.user.id, what)
            raise refusal

    async def _block_refusal(self, interaction: discord.Interaction) -> Denied | None:
        """The refusal (the words /video's has) the presser meets while blocked in this server or everywhere, or
        None."""
        block = None if self.moderation is None else await self.moderation.active_block(interaction.user.id,
                                                                                        interaction.guild_id)
        return None if block is None else Denied(block_message(block))

    async def _keep_from_message(self, message: discord.Message | None, job_id: int) -> None:
        """Save the message's MP4 to the media directory (for results delivered before videos were kept)."""
        video = next((a for a in message.attachments if a.filename.endswith(".mp4")), None) if message else None
        if video is None:
            raise Denied(f"The video of job #{job_id} is no longer available, so it cannot be showcased.")
        await self.media.save(job_id, await video.read())

    async def _deletable(self, interaction: discord.Interaction, job_id: int) -> JobRecord:
        """The job, when the presser is its requester or a moderator of its server; else Denied."""
        job = await self.repo.get_job(job_id)
        if job is None:
            raise Denied(f"Job #{job_id} no longer exists.")
        if job.user_id != interaction.user.id and not moderates(interaction, self.settings, job.guild_id):
            raise Denied(f"Job #{job_id} is not yours; only its requester or a moderator can delete it.")
        return job

    async def _delete(self, interaction: discord.Interaction, job_id: int) -> None:
        """Ask first, privately: a public result in a message only the presser sees, a private one in its buttons."""
        message = interaction.message
        if await self.repo.get_job(job_id) is None and message is not None:  # its row aged out (HISTORY_KEEP_DAYS)
            self._gone_result_deletable(interaction, job_id, message)
        else:
            await self._deletable(interaction, job_id)
        if message is not None and message.flags.ephemeral:  # only its requester sees it: the choice goes there
            await interaction.response.edit_message(view=delete_choices(job_id, 0))
            return
        await interaction.response.send_message(
            f"Delete job #{job_id} for good? The message, the kept video and any showcase post go, and it cannot be "
            "rerolled afterwards.", view=delete_choices(job_id, message.id if message is not None else 0),
            ephemeral=True)

    async def delete_choice(self, interaction: discord.Interaction, delete: bool, job_id: int,
                            message_id: int) -> None:
        """Carry out the confirmation's choice: delete the result (`message_id`, or the private result pressed), or
        keep it."""
        if message_id and await self.repo.get_job(job_id) is None:
            await self._delete_gone_result(interaction, delete, job_id, message_id)
            return
        job = await self._deletable(interaction, job_id)
        if job.deleted_at is not None:  # a second confirmation of the same deletion
            raise Denied(f"Job #{job_id} was deleted already.")
        if delete and message_id and not await self._holds_result(interaction, job, message_id):
            log.warning("user %d confirmed deleting job %d with message %d, which is not its result",
                        interaction.user.id, job_id, message_id)
            raise Denied(f"That message is not the result of job #{job_id}; press 🗑 on the result itself.")
        if not delete:
            if message_id == 0:  # the private result itself: its own buttons back
                view = result_view(job, upscale=self.settings.upscale_model is not None)
                await interaction.response.edit_message(view=view)
            else:
                await interaction.response.edit_message(content=f"Kept job #{job_id}.", view=None)
            return
        await self.showcase_repo.delete_job(job_id)
        await self.media.delete(job_id)
        _, post = await self.showcase.withdraw(job_id)
        done = " ".join(filter(None, (f"🗑️ Deleted job #{job_id}.", post)))
        own = job.user_id == interaction.user.id
        log.info("job %d deleted by %s %d", job_id, "its requester" if own else "moderator", interaction.user.id)
        if not own:
            await audit_on_job(self.moderation, interaction.user.id, "result.delete", job)
        if message_id == 0:  # only the interaction can change an ephemeral result
            await interaction.response.edit_message(content=done, attachments=[], view=None)
        elif (stays := await self._remove_result(interaction, job, message_id)) is None:
            await interaction.response.edit_message(content=done, view=None)
        else:
            await interaction.response.edit_message(content=f"{done} {stays}", view=None)
            return
        if message_id != job.status_message_id:  # its status links to the result that went
            await self.video.delivery.result_deleted(job)

    @staticmethod
    async def _remove_result(interaction: discord.Interaction, job: JobRecord, message_id: int) -> str | None:
        """Delete the result's message through the channel, else through the job's interaction token while it lives
        (slash commands and their answers work in a channel the bot may not see, where the channel's routes answer
        403); when neither could, why the message stays and who can remove it, in words."""
        partial = getattr(interaction.channel, "get_partial_message", None)  # text channels, threads, DMs
        try:
            if partial is not None:
                await partial(message_id).delete()
            return None
        except discord.NotFound:
            log.info("job %d: its message was already gone", job.id)
            return None
        except discord.HTTPException as error:
            if error.code == THREAD_ARCHIVED:  # no message of an archived or locked thread can be deleted
                log.info("job %d: message %d left in thread %d, which is archived or locked (%s %s)", job.id,
                         message_id, job.channel_id, error.status, error.code)
                return THREAD_STAYS
            if not isinstance(error, discord.Forbidden):
                raise
            log.info("job %d: may not delete message %d in channel %d (%s %s); trying its interaction token", job.id,
                     message_id, job.channel_id, error.status, error.code)
        if not job.interaction_token or not job.application_id:
            return HIDDEN_STAYS
        webhook = discord.Webhook.partial(job.application_id, job.interaction_token, client=interaction.client)
        try:
            await webhook.delete_message(message_id)
            return None
        except discord.HTTPException as error:  # the token is too old (401), or the message is not its own (404)
            log.info("job %d: message %d left in channel %d, which the bot may not see (%s %s)", job.id, message_id,
                     job.channel_id, error.status, error.code)
            return HIDDEN_STAYS

    def _gone_result_deletable(self, interaction: discord.Interaction, job_id: int, message: discord.Message) -> None:
        """A result whose job row the retention deleted (HISTORY_KEEP_DAYS) may still be taken down: the bot's own
        message with the job's buttons names its requester (its first mention); Denied unless the presser is that
        requester or a moderator of the server it is in."""
        mine = interaction.client.user is not None and message.author.id == interaction.client.user.id
        if not mine or not _carries_buttons(message, job_id):
            raise Denied(f"Job #{job_id} no longer exists.")
        requester = message.raw_mentions[0] if message.raw_mentions else None
        if requester != interaction.user.id and not is_moderator(interaction.user, self.settings):
            raise Denied(f"Job #{job_id} is not yours; only its requester or a moderator can delete it.")

    async def _delete_gone_result(self, interaction: discord.Interaction, delete: bool, job_id: int,
                                  message_id: int) -> None:
        """The confirmation's choice for a result whose job row is gone: its message (checked again, as a button's
        message id can be forged) and any kept video go."""
        if not delete:
            await interaction.response.edit_message(content=f"Kept job #{job_id}.", view=None)
            return
        fetch = getattr(interaction.channel, "fetch_message", None)
        try:
            message = await fetch(message_id) if fetch is not None else None
        except discord.NotFound:
            message = None
        except discord.Forbidden:
            raise Denied(f"The bot may not see this channel, so it cannot delete the message of job #{job_id}: a "
                         "moderator can delete it.") from None
        if message is None:
            raise Denied(f"Job #{job_id} no longer exists.")
        self._gone_result_deletable(interaction, job_id, message)
        await self.media.delete(job_id)
        try:
            await message.delete()
        except discord.NotFound:  # another confirmation took it down since this one found it
            raise Denied(f"Job #{job_id} was deleted already.") from None
        log.info("job %d (its row aged out) deleted by user %d", job_id, interaction.user.id)
        await interaction.response.edit_message(content=f"🗑️ Deleted job #{job_id}.", view=None)

    @staticmethod
    async def _holds_result(interaction: discord.Interaction, job: JobRecord, message_id: int) -> bool:
        """Whether `message_id` (taken from a button, which a modified client can forge) is the job's status or
        result message as recorded, or else a message of the bot that carries the job's result buttons (results
        whose id could not be recorded); one already gone counts, as there is nothing left to delete."""
        if message_id in (job.status_message_id, job.result_message_id):
            return True
        fetch = getattr(interaction.channel, "fetch_message", None)
        if fetch is None:
            return False
        try:
            message = await fetch(message_id)
        except discord.NotFound:
            return True
        mine = interaction.client.user is not None and message.author.id == interaction.client.user.id
        return mine and _carries_buttons(message, job.id)

    async def vote(self, interaction: discord.Interaction, entry_id: int) -> None:
        """A ⭐ press on a showcase post. A member blocked in the server (or everywhere) may not add a vote, as they may
        not nominate: their say in the showcase waits for the block to end; but they may take back one they gave
        before, as taking back never asks anything of anyone."""
        try:
            refusal = await self._block_refusal(interaction)
            if refusal is not None:
                log.info("user %d is blocked; only taking back a vote on showcase entry %d is allowed",
                         interaction.user.id, entry_id)
            await self.showcase.vote(interaction, entry_id, no_new_vote=refusal)
        except Exception as error:
            await answer_error(interaction, error, f"vote on showcase entry {entry_id}")

    # Showcase posts deleted in Discord by hand, and deleted channels: their posts are forgotten (bot.ui.showcase).
    # A job's status deleted by hand is not posted again, and a job's video deleted by hand leaves its status saying
    # so (bot.ui.delivery).

    @commands.Cog.listener()
    async def on_raw_message_delete(self, event: discord.RawMessageDeleteEvent) -> None:
        self.video.delivery.status_deleted([event.message_id])
        await self.video.delivery.results_deleted([event.message_id])
        author = event.cached_message.author if event.cached_message is not None else None
        if author is None or author == self.showcase.bot.user:  # a message of another author is no post
            await self.showcase.forget(event.channel_id, [event.message_id])

    @commands.Cog.listener()
    async def on_raw_bulk_message_delete(self, event: discord.RawBulkMessageDeleteEvent) -> None:
        self.video.delivery.status_deleted(sorted(event.message_ids))
        await self.video.delivery.results_deleted(sorted(event.message_ids))
        await self.showcase.forget(event.channel_id, sorted(event.message_ids))

    @commands.Cog.listener()
    async def on_guild_channel_delete(self, channel: discord.abc.GuildChannel) -> None:
        await self.showcase.forget(channel.id)


def _private_result(interaction: discord.Interaction) -> bool:
    """Whether a 🔁, ✏️ or ⬆️ of the pressed result is answered privately, known before its job's row is read: a
    private job's result is ephemeral (or a direct message, once its token is too old: only its requester sees that
    either way), a public one's never is. Without the message (Discord always sends it) nothing is shown publicly."""
    message = interaction.message
    return message is None or message.flags.ephemeral


def _as_shown(interaction: discord.Interaction, spec: JobSpec, job_id: int, action: str) -> JobSpec:
    """`spec`, when its placeholder (`_private_result`) is as private as the job: a private job's in a direct message
    may be public, as only its requester sees it. Else Denied: a modified client sent the job's button from another
    message, and a private job's status (its prompt) would go public, or a public one's be left private."""
    shown_private = _private_result(interaction)
    if spec.private == shown_private or (spec.private and interaction.guild_id is None):
        return spec
    log.warning("user %d pressed %s of job %d on a message that is not its result", interaction.user.id, action,
                job_id)
    raise Denied(f"That message is not the result of job #{job_id}; press {BUTTONS[action]} on the result itself.")


def _carries_buttons(message: discord.Message, job_id: int) -> bool:
    """Whether the message carries a result button of the job."""
    buttons = {f"video:{action}:{job_id}" for action in ACTIONS}
    return any(getattr(child, "custom_id", None) in buttons
               for row in message.components for child in getattr(row, "children", ()))
