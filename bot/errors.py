"""Every exception the bot raises on purpose, Discord-free and torch-free.

    BotError
    ├── UserError                 a request the bot turns down; `message` is for the user, `reason` a code for logs
    │   ├── Refused               /video (or a button) not queued: blocked, over a cap or quota, against policy, ...
    │   ├── NothingToCancel       /cancel found nothing of the user's to cancel
    │   ├── Denied                a button or form this user may not use (someone else's result, a deleted job)
    │   └── InvalidInput          a moderator's value that cannot be used (a duration, a limit, a pattern)
    ├── JobFailed                 a job that ran and could not finish; `reason` is the few words its user is told
    │   ├── JobTimedOut           still running JOB_TIME_LIMIT_S after it started
    │   ├── OutOfGPUMemory        out of GPU memory even after the retry with smaller VAE chunks
    │   ├── WorkCrashed           the work raised something that is not an Exception (a BaseException)
    │   ├── SourceVideoGone       the kept MP4 an upscale was to re-render is gone
    │   ├── NoUpscaler            the worker that took an upscale has no upscaler loaded
    │   ├── StyleGone             the job's style is no longer loaded (taken out of STYLES_FILE since it was queued)
    │   └── WorkerLost            its Ray worker died MAX_LOSSES times
    ├── ServiceUnavailable        no worker can take work (the model failed to load, or the bot is stopping)
    ├── SettingsError             wrong settings, or what they name is wrong; one line per problem (exit status 2)
    ├── Unreachable               the database or Discord could not be reached at start, tried with backoff for
    │                             STARTUP_RETRY_S; one line (exit status 1: its supervisor may start it again)
    └── StopRequested             SIGTERM or SIGINT while the bot was still starting; it stops cleanly (exit status 0)

t2v's errors (t2v.errors: InvalidRequest, GenerationCancelled, VideoTooLargeError, ...) and storage's
(storage.errors) are caught by type where they are handled; `failure_reason` says what a user is told of any error
that ended a job. Nothing here is matched by class name or message text.
"""

from __future__ import annotations

from typing import Literal

from t2v.errors import InvalidRequest, NonFiniteOutput, VideoTooLargeError, visible

RefusalReason = Literal[
    "empty", "too_long", "not_english", "denylist", "user_cap", "global_cap", "unavailable", "invalid",
    "blocked", "channel", "quota",
]
INTERNAL = "an internal error; the bot's logs have the details"  # a failure the user is told no more of


class BotError(Exception):
    """The base of the bot's own errors."""


class UserError(BotError):
    """A request the bot turns down: `message` is shown to the user as it is, `reason` names the kind in logs."""

    reason: str = "refused"

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason


class Refused(UserError):
    """A request the service will not run; `logged` is the reason as the job row keeps it (`denylist:violence`),
    `job_id` the refused row once it is written."""

    reason: RefusalReason

    def __init__(self, reason: RefusalReason, message: str, job_id: int | None = None, *,
                 logged: str | None = None) -> None:
        super().__init__(message, reason)
        self.job_id = job_id
        self.logged = logged or reason

    def recorded_as(self, job_id: int) -> Refused:
        """The same refusal, naming the refused row that records it."""
        return Refused(self.reason, self.message, job_id, logged=self.logged)


class NothingToCancel(UserError):
    """A cancel request that found no job of the user's to cancel; `message` says why."""

    reason = "nothing_to_cancel"


class Denied(UserError):
    """A button, form or command this user may not use here (someone else's result, a deleted job)."""

    reason = "denied"


class InvalidInput(UserError, ValueError):
    """A moderator's input that cannot be used; `message` names the value and what is accepted."""

    reason = "invalid_input"


class JobFailed(BotError):
    """A job that ran and could not finish; `reason` is what its user is told, after "failed (...)"."""

    reason = INTERNAL


class JobTimedOut(JobFailed):
    """A job ran past the time limit and was stopped."""

    def __init__(self, limit_s: float) -> None:
        super().__init__(f"still running {limit_s:g} s after it started")
        self.limit_s = limit_s

    def __reduce__(self) -> tuple:
        return type(self), (self.limit_s,)

    @property
    def reason(self) -> str:  # type: ignore[override]
        return f"it was still rendering {self.limit_s:g} s after it started, past the time limit"


class OutOfGPUMemory(JobFailed):
    """The GPU ran out of memory twice, the second time with half the VAE chunk (raised from torch's error)."""

    reason = "the GPU ran out of memory"


class WorkCrashed(JobFailed):
    """The work raised a BaseException that is not an Exception; the worker thread survives it."""


class SourceVideoGone(JobFailed):
    """The MP4 an upscale was to re-render is no longer kept (its job was deleted after the upscale was queued)."""

    reason = "the video to upscale was deleted before the upscale ran"


class NoUpscaler(JobFailed):
    """The worker that took an upscale has no upscaler loaded."""

    reason = "no upscaler is configured: this bot does not upscale now"


class StyleGone(JobFailed):
    """The job's style is not loaded on the worker (the operator took it out of STYLES_FILE after it was queued)."""

    reason = "its style is no longer offered: run /video again with another style, or none"


class WorkerLost(JobFailed):
    """The job's Ray worker died MAX_LOSSES times in a row."""

    reason = "its GPU worker stopped twice while rendering it"


class ServiceUnavailable(BotError):
    """The executor cannot take work (model failed to load, not started, or shutting down)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"video generation is unavailable: {reason}")
        self.reason = reason

    def __reduce__(self) -> tuple:
        return type(self), (self.reason,)


class SettingsError(BotError, ValueError):
    """The settings are incomplete or wrong; `str()` gives one line per problem."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = [visible(line) for line in lines]  # a value with a newline in it stays on its problem's line
        super().__init__("\n".join(self.lines))

    def __reduce__(self) -> tuple[type[SettingsError], tuple[list[str]]]:  # pickled whole (a Ray worker's)
        return type(self), (self.lines,)


class Unreachable(BotError):
    """A service out of the bot's control could not be reached at start; `str()` is one line: what was tried, what
    went wrong, and what to check."""


class StopRequested(BotError):
    """A SIGTERM or SIGINT arrived before the bot was running; what was started has been stopped."""


def failure_reason(error: BaseException) -> str:
    """A few words for the user about why a job failed."""
    if isinstance(error, JobFailed):
        return error.reason
    if isinstance(error, InvalidRequest):
        return f"invalid settings: {error}"
    if isinstance(error, VideoTooLargeError):
        return "the video would not fit under Discord's upload limit"
    if isinstance(error, NonFiniteOutput):
        return "the model's numbers overflowed into an unusable video; another seed or a weaker style may work"
    return INTERNAL
