"""The one shape of a request from the command to the worker: t2v's GenerationRequest, plus the bot's few extras.

The command builds the request once (`JobSpec.video`); t2v validates it on construction and owns the defaults and
limits (t2v.request, t2v.config); a value it refuses is said here, in a member's words (`refusal`). A job row keeps
the request's fields by name in its params, next to the extras (aspect, private, quota cost, an upscale's source, the
style); after a restart `JobSpec.of_job` builds the same request again. The prompt is the member's as typed: a
style's prefix and suffix are added on the worker (bot.gpu.styles). Discord-free: who asked travels as plain values
(`Requester`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from bot.gpu.models import ASPECTS, DEFAULT_ASPECT, Size
from bot.moderation import values
from storage import JobRecord
from t2v.errors import InvalidRequest
from t2v.request import MODEL_DEFAULTS, GenerationRequest, empty_prompt, not_text

log = logging.getLogger(__name__)

DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024  # Discord's upload limit for servers without boosts
UPSCALE = "upscale"  # the `kind` of a job that re-renders a finished job's video with the upscaler
ORIGINS = {"reroll": "rerolled_from", "edit": "edited_from"}  # how a job came from another -> its params key
REQUEST_FIELDS = ("seed", "steps", "guidance", "frames", "width", "height", "fps", "sampler")  # params keys
# (the prompt and the negative prompt have columns of their own)
NAMED = {**values.NAMED, "prompt": "the prompt", "negative_prompt": "the negative prompt"}  # as a member reads them
LEFT_TO_T2V = ("seed", *MODEL_DEFAULTS)  # fields whose None t2v fills in (a random seed, the model's size and length)


@dataclass(frozen=True)
class UpscaleOf:
    """What an upscale re-renders: a finished job, its kept MP4, and how much of it the upscaler may change."""

    job_id: int
    video: str  # path of the job's MP4 in the media directory when the upscale was asked (rows keep it for older
    #             versions); the run reads the video where MEDIA_DIR keeps it now, by `job_id` (bot.jobs.units)
    strength: float  # 0–1: the fraction of the denoising steps re-run (SDEdit)


@dataclass(frozen=True)
class JobSpec:
    """A job as asked: t2v's request (its seed None when the user chose none) and what the bot keeps beside it."""

    request: GenerationRequest
    aspect: str = DEFAULT_ASPECT
    private: bool = False
    cost: int = 1  # quota units the job counts for (an upscale counts UPSCALE_COST)
    upscale: UpscaleOf | None = None  # set for an upscale of a finished job
    origin: tuple[str, int] | None = None  # ("reroll" or "edit", the job it came from), for 🔁 and ✏️ jobs
    style: str | None = None  # a style of STYLES_FILE (bot.gpu.styles); None: none

    @classmethod
    def video(cls, prompt: str, *, aspect: str = DEFAULT_ASPECT, sizes: Callable[[str], Size] = ASPECTS.__getitem__,
              private: bool = False, style: str | None = None, **fields: Any) -> JobSpec:
        """A /video at the size `sizes` gives for `aspect` (the loaded model's), in `style`; `fields` are the
        request's (negative_prompt, seed, steps, guidance, frames, sampler: left out, t2v's defaults).
        InvalidRequest names a bad value and what would be right, as a member reads it (`refusal`)."""
        problem = refusal("aspect", aspect)
        if problem is None:
            width, height = sizes(aspect)
            fields = {"width": width, "height": height, **fields}
            problem = _first_problem(prompt, fields)
        if problem is not None:
            raise InvalidRequest(problem)
        return cls(GenerationRequest(prompt, **fields), aspect, private, style=style)

    @classmethod
    def of_job(cls, job: JobRecord, *, clause: bool = False) -> JobSpec:
        """The spec a job row keeps; InvalidRequest if its params no longer make a request, naming the value and
        what would be right as a member reads it (`refusal`; with `clause`, its clause: a failed job's reason)."""
        params = job.params
        fields = {name: params[name] for name in REQUEST_FIELDS if params.get(name) is not None}
        fields["negative_prompt"] = job.negative_prompt
        problem = _first_problem(job.prompt, fields, clause=clause)
        if problem is not None:
            raise InvalidRequest(problem)
        request = GenerationRequest(job.prompt, **fields)
        upscale = None
        if params.get("kind") == UPSCALE:
            upscale = UpscaleOf(int(params["source_job"]), str(params["source_video"]), float(params["strength"]))
        origin = next(((how, int(params[key])) for how, key in ORIGINS.items() if params.get(key) is not None), None)
        style = params.get("style")
        return cls(request, str(params.get("aspect", DEFAULT_ASPECT)), bool(params.get("private")),
                   int(params.get("cost", 1)), upscale, origin, None if style is None else str(style))

    @property
    def prompt(self) -> str:
        return self.request.prompt

    @property
    def negative(self) -> str:
        return self.request.negative_prompt

    def again(self, source: int, prompt: str | None = None) -> JobSpec:
        """This spec, the job `source`'s, with a new random seed (🔁 Reroll), and a new prompt when given (✏️ Edit
        prompt); the style and the other options stay, and the new job remembers which job it came from, and how.
        InvalidRequest for a new prompt that is no text (`refusal`)."""
        problem = None if prompt is None else refusal("prompt", prompt)
        if problem is not None:
            raise InvalidRequest(problem)
        request = replace(self.request, seed=None, prompt=self.prompt if prompt is None else prompt)
        return replace(self, request=request, origin=("reroll" if prompt is None else "edit", source))

    def params(self) -> dict[str, Any]:
        """The job row's params: the request's fields by name, then the extras."""
        params = {name: getattr(self.request, name) for name in REQUEST_FIELDS}
        params.update(aspect=self.aspect, private=self.private, cost=self.cost, kind="video", style=self.style)
        if self.origin is not None:
            how, source = self.origin
            params[ORIGINS[how]] = source
        if self.upscale is not None:
            params.update(kind=UPSCALE, source_job=self.upscale.job_id, source_video=self.upscale.video,
                          strength=self.upscale.strength)
        return params


def refusal(name: str, value: Any, *, clause: bool = False) -> str | None:
    """Why a /video, a button's job or a stored job cannot have `value` as its `name` (the aspect, the prompt, the
    negative prompt or a field of t2v's request), or None: the one text a member reads for it, in docs/voice.md's
    refusal form, what is wrong naming the value and what would be right ("Steps must be 1–150; you asked for 0.");
    the prompt's here, the others bot.moderation.values' (the aspect one of the bot's ASPECTS). With `clause`: the
    reason in lower case and without a full stop, to go on after a failed job's "invalid settings: " ("steps must be
    1–150, not 0")."""
    if name in ("prompt", "negative_prompt"):
        return _not_text(name, value, clause=clause)
    return values.refusal(name, value, ASPECTS, clause=clause)


def _not_text(name: str, prompt: str, *, clause: bool) -> str | None:
    """Why the prompt or negative prompt (`name`) makes no request: it holds a lone surrogate, which is no character
    (t2v.request.not_text), or the prompt shows nothing (t2v.request.empty_prompt: /video and ✏️ Edit prompt refuse a
    blank prompt before, as the gate does; a stored one meets it); None otherwise."""
    what = NAMED[name]
    if not_text(prompt, name) is not None:
        lone = next(char for char in prompt if 0xD800 <= ord(char) <= 0xDFFF)
        reason, right = f"{what} holds U+{ord(lone):04X}, which is no character (half of a pair)", "type it again"
    elif name == "prompt" and empty_prompt(prompt) is not None:
        reason, right = f"{what} is blank", "describe the video to make"
    else:
        return None
    return reason if clause else f"{what[0].upper()}{reason[1:]}; {right}."


def _first_problem(prompt: str, fields: Mapping[str, Any], *, clause: bool = False) -> str | None:
    """The first reason (`refusal`) the prompt and a request's `fields` make no GenerationRequest, or None."""
    values = {"prompt": prompt, **fields}
    for name, value in values.items():
        if name not in NAMED or (value is None and name in LEFT_TO_T2V):  # a name t2v takes none of: its TypeError
            continue
        problem = refusal(name, value, clause=clause)
        if problem is not None:
            return problem
    return None


@dataclass(frozen=True)
class Queued:
    """A job in the fair queue: its row, and its spec (None, with why, for a stored row t2v no longer accepts)."""

    job: JobRecord
    spec: JobSpec | None
    invalid: InvalidRequest | None = None

    @classmethod
    def of_job(cls, job: JobRecord) -> Queued:
        """A stored job, queued again after a restart."""
        try:
            return cls(job, JobSpec.of_job(job, clause=True))
        except InvalidRequest as error:
            log.warning("job %d no longer makes a valid request: %s", job.id, error)
            return cls(job, None, error)

    @property
    def id(self) -> int:
        return self.job.id

    @property
    def user_id(self) -> int:
        return self.job.user_id


@dataclass(frozen=True)
class Requester:
    """Who asked and where to answer: Discord ids and the interaction's token, as plain values."""

    user_id: int
    user_name: str
    channel_id: int
    guild_id: int | None = None
    interaction_token: str | None = field(default=None, repr=False)  # short-lived webhook token; kept out of logs
    application_id: int | None = None
    upload_limit: int = DEFAULT_UPLOAD_LIMIT  # interaction.filesize_limit, in bytes
    role_ids: tuple[int, ...] = ()  # the member's roles, for per-role quota defaults
    parent_channel_id: int | None = None  # a thread's channel, whose /video rule the thread follows

    def row(self, spec: JobSpec) -> Mapping[str, Any]:
        """The job-row fields of a request by this requester (accepted or refused)."""
        return self.text_row(spec.prompt, spec.negative, spec.params())

    def text_row(self, prompt: str, negative: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
        """The job-row fields of a request by this requester, from its texts and params (a blank prompt is refused
        before it makes a spec)."""
        return {
            "user_id": self.user_id,
            "user_name": self.user_name[:100],
            "channel_id": self.channel_id,
            "guild_id": self.guild_id,
            "prompt": prompt,
            "negative_prompt": negative,
            "params": {**params, "upload_limit": self.upload_limit},
            "application_id": self.application_id,
        }
