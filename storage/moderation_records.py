"""ORM-free records of the moderation tables and of the usage statistics computed from the jobs log.

`guild_id` is the server a record belongs to, or GLOBAL (0) for the operator's records above every server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class QuotaOverrideRecord:
    """A user's personal quota limit in a server (None: defaults apply) and the moderator's usage reset, if any."""

    guild_id: int
    user_id: int
    max_videos: int | None
    counted_from: datetime | None
    set_by: int
    set_at: datetime


@dataclass(frozen=True, slots=True)
class RoleQuotaRecord:
    """The quota of a server's members holding a role."""

    guild_id: int
    role_id: int
    max_videos: int
    set_by: int
    set_at: datetime


@dataclass(frozen=True, slots=True)
class BlockRecord:
    """A block on a user in a server (GLOBAL: everywhere); `until` None means until a moderator unblocks them."""

    guild_id: int
    user_id: int
    reason: str
    until: datetime | None
    blocked_by: int
    blocked_at: datetime

    def active(self, now: datetime) -> bool:
        """True while the block holds at `now`."""
        return self.until is None or now < self.until


@dataclass(frozen=True, slots=True)
class ChannelRuleRecord:
    """Whether /video is allowed in a channel of a server."""

    guild_id: int
    channel_id: int
    allowed: bool
    set_by: int
    set_at: datetime


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One row of the moderation audit log of a server (GLOBAL: the operator's)."""

    id: int
    guild_id: int
    actor_id: int
    action: str  # e.g. "quota.set", "block", "denylist.add"; for refused attempts, the command's name
    target: str | None  # e.g. "user:123", "channel:456", "pattern:nude"
    details: dict[str, Any]
    at: datetime
    allowed: bool  # False: a non-moderator tried it and was refused


@dataclass(frozen=True, slots=True)
class UserUsage:
    """One user's share of the usage in a window."""

    user_id: int
    user_name: str
    requests: int  # accepted requests (refused ones excluded)
    gpu_s: float


@dataclass(frozen=True, slots=True)
class ServerUsage:
    """One server's requests in a window (refused ones included); guild_id None counts direct messages."""

    guild_id: int | None
    requests: int
    users: int  # distinct users who asked


@dataclass(frozen=True, slots=True)
class UsageStats:
    """Requests, outcomes, refusal reasons, GPU time and the busiest users since a time (None: ever)."""

    since: datetime | None
    requests: int  # every row, refused ones included
    by_state: dict[str, int] = field(default_factory=dict)
    refusals: dict[str, int] = field(default_factory=dict)  # refusal_reason -> count, most frequent first
    gpu_s: float = 0.0  # GPU seconds of the finished videos
    top_users: tuple[UserUsage, ...] = ()
