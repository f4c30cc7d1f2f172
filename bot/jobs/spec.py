"""Discord-free job types: what a user asked for, who asked, and what the service answers or refuses."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from storage import JobRecord
from t2v import GenerationRequest, InvalidRequest
from t2v.pipeline import LIMITS, MAX_SEED

log = logging.getLogger(__name__)

FPS = 8  # ModelScope's clips are 16 frames meant to play over 2 s
SAMPLERS = {"ddim": "DDIM (ModelScope's)", "dpmpp-2m": "DPM-Solver++ 2M (good at 20–25 steps)"}  # /video's choices
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024  # Discord's upload limit for servers without boosts

# Aspect name -> (width, height) on ModelScope's 256² model: t2v.aspect_sizes of its config (short side 256, long side
# the nearest multiple of 64; 4:3 is really 5:4, 16:9 is 7:4). Jobs get the loaded model's own sizes (bot.gpu.models);
# this table names the aspects and stands in for pipelines that do not say their size. Discord shows ≤ 25 choices.
ASPECTS: dict[str, tuple[int, int]] = {
    "1:1": (256, 256),
    "4:3": (320, 256),
    "3:4": (256, 320),
    "16:9": (448, 256),
    "9:16": (256, 448),
}
UPSCALE = "upscale"  # the `kind` of a job that re-renders a finished job's video with the upscaler

RefusalReason = Literal[
    "empty", "too_long", "not_english", "denylist", "user_cap", "global_cap", "unavailable", "invalid",
    "blocked", "channel", "quota",
]


def _check_number(name: str, value: Any, low: float, high: float, kind: type) -> None:
    """Raise InvalidRequest naming the value and the range unless low <= value <= high and of the right kind."""
    numeric = (int, float) if kind is float else (int,)
    if isinstance(value, bool) or not isinstance(value, numeric):
        raise InvalidRequest(f"{name}={value!r} must be a{'n integer' if kind is int else ' number'}")
    if not low <= value <= high:
        raise InvalidRequest(f"{name}={value} is outside the allowed range {low}–{high}")


@dataclass(frozen=True)
class UpscaleOf:
    """What an upscale re-renders: a finished job, its kept MP4, and how much of it the upscaler may change."""

    job_id: int
    video: str  # path of the job's MP4 in the media directory
    strength: float  # 0–1: the fraction of the denoising steps re-run (SDEdit)


@dataclass(frozen=True)
class VideoOptions:
    """The options of one /video request, checked against the engine's limits (server caps: the service)."""

    prompt: str
    negative: str = ""
    seed: int | None = None  # None: the service picks one at random when the job is accepted
    steps: int = 50
    guidance: float = 9.0
    frames: int = 16
    aspect: str = "1:1"
    private: bool = False
    width: int | None = None  # None: the aspect's size (the service fills in the loaded model's)
    height: int | None = None
    cost: int = 1  # quota units the job counts for (an upscale counts UPSCALE_COST)
    upscale: UpscaleOf | None = None  # set for an upscale of a finished job
    sampler: str = "ddim"  # ModelScope's; one of SAMPLERS

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str) or not isinstance(self.negative, str):
            raise InvalidRequest("prompt and negative must be text")
        _check_number("steps", self.steps, *LIMITS["steps"], int)
        _check_number("guidance", self.guidance, *LIMITS["guidance"], float)
        _check_number("frames", self.frames, *LIMITS["frames"], int)
        if self.seed is not None:
            _check_number("seed", self.seed, 0, MAX_SEED, int)
        if (self.width is None) != (self.height is None):
            raise InvalidRequest("width and height must be given together")
        if self.width is None and self.aspect not in ASPECTS:
            raise InvalidRequest(f"aspect={self.aspect!r} is not one of {', '.join(ASPECTS)}")
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None:
                _check_number(name, value, *LIMITS["size"], int)
                if value % 64:
                    raise InvalidRequest(f"{name}={value} must be a multiple of 64")
        _check_number("cost", self.cost, 1, 1000, int)
        if self.sampler not in SAMPLERS:
            raise InvalidRequest(f"sampler={self.sampler!r} is not one of {', '.join(SAMPLERS)}")

    def size(self) -> tuple[int, int]:
        """(width, height) in pixels: the size given (the loaded model's for the aspect), else ASPECTS'."""
        if self.width is not None and self.height is not None:
            return self.width, self.height
        return ASPECTS[self.aspect]

    def to_request(self, seed: int) -> GenerationRequest:
        """The engine request for these options with the seed the service chose."""
        width, height = self.size()
        return GenerationRequest(self.prompt, negative_prompt=self.negative, seed=seed, steps=self.steps,
                                 guidance=float(self.guidance), frames=self.frames, width=width, height=height,
                                 fps=FPS, sampler=self.sampler)

    def to_params(self) -> dict[str, Any]:
        """The options as the job row's JSON params (prompt and negative prompt have their own columns)."""
        width, height = self.size()
        return {"seed": self.seed, "steps": self.steps, "guidance": float(self.guidance), "frames": self.frames,
                "aspect": self.aspect, "width": width, "height": height, "fps": FPS, "sampler": self.sampler,
                "private": self.private, "cost": self.cost, **_upscale_params(self.upscale)}

    @classmethod
    def from_params(cls, prompt: str, negative: str, params: Mapping[str, Any]) -> VideoOptions:
        """Rebuild the options of a stored job (for restart and reroll); keys not given take their defaults."""
        names = ("seed", "steps", "guidance", "frames", "aspect", "private", "width", "height", "cost", "sampler")
        upscale = None
        if params.get("kind") == UPSCALE:
            upscale = UpscaleOf(int(params["source_job"]), str(params["source_video"]), float(params["strength"]))
        return cls(prompt, negative, **{name: params[name] for name in names if name in params}, upscale=upscale)


def _upscale_params(upscale: UpscaleOf | None) -> dict[str, Any]:
    """The job-row params naming the job's kind and, for an upscale, its source."""
    if upscale is None:
        return {"kind": "video"}
    return {"kind": UPSCALE, "source_job": upscale.job_id, "source_video": upscale.video, "strength": upscale.strength}


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


@dataclass(frozen=True)
class Submitted:
    """An accepted job: its row, its 1-based place in the queue, and when it should be done."""

    job: JobRecord
    position: int
    eta: datetime


@dataclass(frozen=True)
class Delivered:
    """A finished job: its `done` row and the MP4 to post."""

    job: JobRecord
    video: bytes
    seed: int
    notes: tuple[str, ...]
    gpu_s: float
    shrink: Callable[[int], bytes] | None = None  # the video re-encoded to at most n bytes (CPU work: use a thread)

    def __repr__(self) -> str:
        return f"Delivered(job={self.job.id}, video={len(self.video)} bytes, seed={self.seed}, gpu_s={self.gpu_s:.1f})"


class Refused(Exception):
    """A request the service will not run; `message` is for the user, `reason` a machine code for logs."""

    def __init__(self, reason: RefusalReason, message: str, job_id: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.job_id = job_id


class NothingToCancel(Exception):
    """A cancel request that found no job of the user's to cancel; `message` says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
