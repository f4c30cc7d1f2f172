"""ORM-free records the repositories hand out: job states and deliveries, denylist kinds, jobs, denylist and
showcase entries."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

# The largest job id there can be: jobs.id is a 32-bit INTEGER, and PostgreSQL answers a larger number in a query with
# an error (asyncpg: "value out of int32 range"), not with no row. Ids typed by people are checked against it first.
MAX_JOB_ID = 2**31 - 1
GLOBAL = 0  # the scope above every server (Discord ids are never 0): the operator's settings, the shipped denylist
MAX_SNOWFLAKE = 2**63 - 1  # Discord's ids (positive) and SQL's BIGINT end here


def is_snowflake(text: str) -> bool:
    """Whether `text` is a Discord id as a person may type it: decimal digits of a whole number from 1 to 2⁶³ − 1,
    ASCII or another script's (full-width １２３ from a Japanese or Chinese keyboard; int(text) reads them alike and
    gives the id). Superscripts and other digit-like signs (², ①), which int() refuses, are not."""
    return text.isdecimal() and 0 < int(text) <= MAX_SNOWFLAKE


class JobState(StrEnum):
    """Where a job is in its life; stored as its lowercase value."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    REFUSED = "refused"
    CANCELLED = "cancelled"

    @property
    def is_active(self) -> bool:
        """True while the job still waits for or holds the GPU."""
        return self in ACTIVE_STATES


ACTIVE_STATES = frozenset({JobState.QUEUED, JobState.RUNNING})


class Delivery(StrEnum):
    """What became of a finished (done) job's video on Discord; stored as its lowercase value."""

    PENDING = "pending"  # rendered and recorded, not yet posted: a post cut short by the process's end stays so
    POSTED = "posted"  # the result message is on Discord (its id is the job's result_message_id)
    UNPOSTED = "unposted"  # never reached its requester (refused, failed, lost at a stop): the job failed, uncharged


class StopRequester(StrEnum):
    """Who asked to stop a running job when its requester did not: stopped so, it is cancelled uncharged, after a
    restart too; stored as its lowercase value (at most 16 characters: `jobs.stop_requested_by` is a VARCHAR(16)
    without a CHECK constraint, so a new value needs no migration)."""

    MODERATOR = "moderator"  # a moderator of its server cancelled it
    BLOCK = "block"  # a moderator blocked its requester
    SERVER_LEFT = "server_left"  # the bot was removed from its server (kicked, the server deleted, or left)


class ShowcaseState(StrEnum):
    """A nominated result waits for a moderator, who approves (shown) or rejects it."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class DenyKind(StrEnum):
    """A denylist entry either blocks prompts or exempts a phrase from a broader block."""

    DENY = "deny"
    ALLOW = "allow"


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One row of the jobs usage log: a request, refused or not, and what became of it."""

    id: int  # the user-facing job number
    user_id: int
    user_name: str  # display name at request time
    guild_id: int | None  # None in DMs
    channel_id: int
    prompt: str
    negative_prompt: str
    params: dict[str, Any]  # steps, guidance, frames, width, height, fps, aspect, sampler, private...
    seed: int | None  # None until chosen
    state: JobState
    refusal_reason: str | None  # machine code, e.g. "not_english", "denylist:sexual", "user_cap"
    error: str | None
    created_at: datetime  # all datetimes are timezone-aware UTC
    started_at: datetime | None
    finished_at: datetime | None
    queue_wait_s: float | None
    gpu_s: float | None
    output_bytes: int | None
    attempts: int  # how many times the job was started
    cancel_requested: bool
    interaction_token: str | None = field(repr=False)  # short-lived webhook token; kept out of logs
    application_id: int | None
    status_message_id: int | None
    result_message_id: int | None
    deleted_at: datetime | None = None  # when the requester or a moderator deleted the result
    delivery: Delivery | None = None  # a done job's post (None: not done, or done before deliveries were recorded)
    stop_requested_by: StopRequester | None = None  # a stop asked of it running, not by its requester: uncharged

    @property
    def is_active(self) -> bool:
        """True while the job is queued or running."""
        return self.state.is_active

    @property
    def private(self) -> bool:
        """True for `/video private:true` jobs: never in a channel, the showcase or the media directory."""
        return bool(self.params.get("private"))


@dataclass(frozen=True, slots=True)
class DenylistRecord:
    """One denylist or allowlist pattern of a server, or of every server (GLOBAL); `added_by` is None for the shipped
    defaults."""

    id: int
    pattern: str
    category: str
    kind: DenyKind
    added_by: int | None
    created_at: datetime
    guild_id: int = GLOBAL


@dataclass(frozen=True, slots=True)
class ShowcaseRecord:
    """A showcase entry with what the showcase and the gallery show of its job, and its ⭐ count."""

    id: int
    job_id: int
    state: ShowcaseState
    nominated_by: int
    nominated_at: datetime
    decided_by: int | None
    decided_at: datetime | None
    reason: str | None  # a moderator's reason for rejecting
    channel_id: int | None  # the showcase post, once approved and posted
    message_id: int | None
    votes: int
    prompt: str
    author_id: int  # the requester of the job
    author_name: str  # their display name at request time
    job_deleted: bool  # the result was deleted after the nomination
    guild_id: int = GLOBAL  # the server whose moderators decide (its job's), GLOBAL for the operator's
    width: int | None = None  # the video's size in pixels, as its job rendered it (None: not recorded)
    height: int | None = None
