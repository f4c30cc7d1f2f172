"""Quotas, blocks and channel rules for /video, and the moderators' edits of them (audited). Discord-free.

Every record is a server's own: its moderators' quotas, blocks, channel rules and audit log apply in that server
only, and the operator's (GLOBAL) ones above every server.

Quota periods are calendar periods in UTC, not rolling windows: an hour starts on the hour, a day at 00:00 UTC,
a week on Monday 00:00 UTC, a month on the 1st at 00:00 UTC; every user's allowance comes back at that moment.
Usage is counted from the jobs log (see storage.moderation.COUNTED), per server, so it survives restarts and refunds
itself. A user's limit in a server is their personal limit there, else the most generous default among their
roles, else the server default (set by its moderators, else the bot's: the operator's, else QUOTA_DEFAULT); an
operator may also cap a user across every server. A server's own default keeps the period it was set with (the one in
force then, unless a period was given); direct messages count per the bot's default, and an operator's reset (of the
cap across every server) gives a fresh allowance there too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from bot.characters import counted, invisible, shown
from bot.errors import InvalidInput, Refused
from bot.moderation.text import block_message, discord_time, parse_duration
from bot.settings import MAX_QUOTA, QUOTA_PERIODS, Settings
from storage import GLOBAL, BlockRecord, ModerationRepository, QuotaOverrideRecord, UsageStats, utc_now

log = logging.getLogger(__name__)

QuotaSource = Literal["personal", "role", "server", "bot", "everywhere"]  # bot: the operator's default


class Asker(Protocol):
    """Who asks for a video, as far as the rules care (bot.jobs.spec.Requester)."""

    @property
    def user_id(self) -> int: ...

    @property
    def channel_id(self) -> int: ...

    @property
    def guild_id(self) -> int | None: ...

    @property
    def role_ids(self) -> tuple[int, ...]: ...

    @property
    def parent_channel_id(self) -> int | None: ...
Clock = Callable[[], datetime]

DEFAULT_KEY = "quota_default"  # moderation_settings key of the server default set by moderators
PERIOD_KEY = "quota_period"  # ... and of the server's quota period
PERIOD_TEXT = {"hour": "this hour", "day": "today (UTC day)", "week": "this week (UTC, from Monday)",
               "month": "this month (UTC)"}
STATS_WINDOWS = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(days=7),
                 "month": timedelta(days=30), "all": None}  # /videomod stats looks back this far (rolling)


def period_bounds(period: str, now: datetime) -> tuple[datetime, datetime]:
    """The calendar period (UTC) containing `now`: (start, end), end exclusive."""
    now = now.astimezone(UTC)
    if period == "hour":
        start = now.replace(minute=0, second=0, microsecond=0)
        return start, start + timedelta(hours=1)
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return start, start + timedelta(days=1)
    if period == "week":
        start -= timedelta(days=start.weekday())
        return start, start + timedelta(days=7)
    if period == "month":
        start = start.replace(day=1)
        return start, (start + timedelta(days=32)).replace(day=1)
    raise ValueError(f"quota period {period!r} is not one of {', '.join(QUOTA_PERIODS)}")


def check_limit(limit: int, period: str = "period") -> int:
    """The limit if 0 <= limit <= MAX_QUOTA, else InvalidInput naming the range."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= MAX_QUOTA:
        raise InvalidInput(f"A quota of {limit} videos per {period} is outside the allowed range 0–{MAX_QUOTA}.")
    return limit


@dataclass(frozen=True)
class QuotaStatus:
    """A user's quota right now: videos used and allowed this period, when it resets, and where the limit comes from."""

    used: int
    limit: int
    period: str
    resets_at: datetime
    source: QuotaSource
    role_id: int | None = None  # the role whose default applies, when source is "role"

    @property
    def remaining(self) -> int:
        """Videos still allowed this period."""
        return max(self.limit - self.used, 0)

    def describe(self) -> str:
        """One sentence for /quota and refusals: used, limit, period and the reset time."""
        return (f"{self.used} of {counted(self.limit, 'video')} used {PERIOD_TEXT[self.period]}; "
                f"it resets {discord_time(self.resets_at)} ({discord_time(self.resets_at, 'f')})")


@dataclass(frozen=True)
class QuotaDefault:
    """The default quota of a server (or of direct messages): videos per period, and who set it."""

    limit: int
    period: str
    source: Literal["server", "bot"]  # the server's moderators, or the bot's (the operator's run-time value or the
    #                                   settings' QUOTA_DEFAULT and QUOTA_PERIOD)
    own_period: bool = False  # the server keeps its own period; False: the bot's applies, and follows its changes
    #                           (a server default set before 2026-12-06 without a period, or none)


class Moderation:
    """The moderation state /video obeys and the moderators' edits of it; every edit writes an audit row.

    Everything is per server: a `guild_id` names the server whose records a call reads or changes, GLOBAL the
    operator's, which hold above every server (global blocks, a user's cap across every server, the default quota
    of servers that set none, the audit of operators' actions). Requests in direct messages obey the operator's.
    """

    def __init__(self, repo: ModerationRepository, *, default_limit: int, period: str,
                 clock: Clock = utc_now) -> None:
        if period not in QUOTA_PERIODS:
            raise ValueError(f"quota period {period!r} is not one of {', '.join(QUOTA_PERIODS)}")
        self.repo = repo
        self.period = period  # QUOTA_PERIOD: the bot's, unless the operator or a server set another
        self._configured_default = check_limit(default_limit, period)
        self._clock = clock

    @classmethod
    def from_settings(cls, repo: ModerationRepository, settings: Settings, clock: Clock = utc_now) -> Moderation:
        """Quota default and period from QUOTA_DEFAULT and QUOTA_PERIOD."""
        return cls(repo, default_limit=settings.quota_default, period=settings.quota_period, clock=clock)

    def now(self) -> datetime:
        """The moderation clock's time (blocks expire and periods turn by it)."""
        return self._clock()

    # --- what /video obeys ------------------------------------------------------------------------------------

    async def default_quota(self, guild_id: int | None) -> QuotaDefault:
        """A server's default quota: its moderators' if they set one, else the bot's (the operator's run-time value,
        else QUOTA_DEFAULT per QUOTA_PERIOD). None (direct messages) and GLOBAL get the bot's."""
        bot_limit = await self.repo.setting(DEFAULT_KEY, guild_id=GLOBAL)
        bot_period = await self.repo.setting(PERIOD_KEY, guild_id=GLOBAL)
        bot = QuotaDefault(self._configured_default if bot_limit is None else int(bot_limit),
                           self.period if bot_period is None else str(bot_period), "bot")
        if guild_id is None or guild_id == GLOBAL:
            return bot
        limit = await self.repo.setting(DEFAULT_KEY, guild_id=guild_id)
        period = await self.repo.setting(PERIOD_KEY, guild_id=guild_id)
        if limit is None and period is None:
            return bot
        return QuotaDefault(bot.limit if limit is None else int(limit), bot.period if period is None else str(period),
                            "server", own_period=period is not None)

    async def quota(self, user_id: int, role_ids: Iterable[int] = (), guild_id: int | None = None) -> QuotaStatus:
        """The user's usage and limit in a server's current period (None: in direct messages, where the bot's default
        applies and an operator's reset, the one of the cap across every server, counts usage from then on)."""
        default = await self.default_quota(guild_id)
        start, end = period_bounds(default.period, self.now())
        override = await self.repo.quota_override(user_id, guild_id=GLOBAL if guild_id is None else guild_id)
        limit, source, role_id = await self._limit(None if guild_id is None else override, tuple(role_ids), guild_id,
                                                   default)  # a cap is no personal limit of direct messages
        used = await self.repo.count_usage(user_id, _since(start, override), guild_id=guild_id)
        return QuotaStatus(used, limit, default.period, end, source, role_id)

    async def quota_everywhere(self, user_id: int) -> QuotaStatus | None:
        """The operator's cap on the user across every server (and direct messages), if there is one."""
        override = await self.repo.quota_override(user_id, guild_id=GLOBAL)
        if override is None or override.max_videos is None:
            return None
        period = (await self.default_quota(GLOBAL)).period
        start, end = period_bounds(period, self.now())
        used = await self.repo.count_usage(user_id, _since(start, override), guild_id=GLOBAL)
        return QuotaStatus(used, override.max_videos, period, end, "everywhere")

    async def _limit(self, override: QuotaOverrideRecord | None, role_ids: tuple[int, ...], guild_id: int | None,
                     default: QuotaDefault) -> tuple[int, QuotaSource, int | None]:
        """(limit, where it comes from, the role) for a user: personal, else best role default, else the default."""
        if override is not None and override.max_videos is not None:
            return override.max_videos, "personal", None
        in_server = guild_id is not None and guild_id != GLOBAL
        roles = await self.repo.role_quotas(role_ids, guild_id=guild_id) if role_ids and in_server else []
        if roles:
            best = max(roles, key=lambda role: (role.max_videos, -role.role_id))
            return best.max_videos, "role", best.role_id
        return default.limit, default.source, None

    async def active_block(self, user_id: int, guild_id: int | None) -> BlockRecord | None:
        """The user's block that holds now in a server (None: in direct messages): the server's, or a global one."""
        return await self.repo.active_block(user_id, _with_global(guild_id), self.now())

    async def own_block(self, user_id: int, guild_id: int) -> BlockRecord | None:
        """The user's block that holds now in exactly this scope (a server's own, or GLOBAL: the operators')."""
        return await self.repo.active_block(user_id, [guild_id], self.now())

    async def check_access(self, requester: Asker) -> None:
        """Refused for a user blocked in the requester's server (or everywhere), or in a channel where the server's
        moderators turned /video off (a global rule from before servers had their own can only turn one off). A
        thread without a rule of its own follows its channel's (else a thread would be a way round a channel's)."""
        block = await self.active_block(requester.user_id, requester.guild_id)
        if block is not None:
            log.info("user %d is blocked in %s (%s); request refused", requester.user_id,
                     "every server" if block.guild_id == GLOBAL else f"server {block.guild_id}", block.reason)
            raise Refused("blocked", block_message(block))
        rules = await self.repo.channel_rules(_with_global(requester.guild_id))
        allowed = [rule.channel_id for rule in rules if rule.allowed and rule.guild_id != GLOBAL]
        denied = {rule.channel_id for rule in rules if not rule.allowed}
        here = requester.channel_id
        if here not in denied and here not in allowed and requester.parent_channel_id is not None:
            here = requester.parent_channel_id
        if here in denied or (allowed and here not in allowed):
            where = " or ".join(f"<#{channel}>" for channel in allowed[:5])
            raise Refused("channel", "Videos cannot be made in this channel" + (f"; please use {where}." if where
                                                                                 else "."))

    async def check_quota(self, requester: Asker, cost: int = 1) -> None:
        """Refused when the user's quota this period in the server, or the operator's cap across every server, has
        less than `cost` videos left."""
        status = await self.quota(requester.user_id, requester.role_ids, requester.guild_id)
        if status.used + cost <= status.limit:
            cap = await self.quota_everywhere(requester.user_id)
            if cap is None or cap.used + cost <= cap.limit:
                return
            status = cap
        where = " across every server" if status.source == "everywhere" else ""
        if status.limit == 0:
            message = (f"Your video quota{where} is 0 per {status.period}, so you cannot make videos right now; "
                       "ask a moderator if that seems wrong.")
        elif status.remaining:
            message = (f"This counts as {cost} videos against your quota{where} and you have {status.remaining} "
                       f"left: {status.describe()}.")
        else:
            message = f"You have reached your video quota{where}: {status.describe()}."
        raise Refused("quota", message)

    # --- moderators' edits (guild_id: their server; GLOBAL: an operator's, for every server) ---------------------

    async def set_limit(self, actor: int, user_id: int, limit: int, *, guild_id: int) -> QuotaOverrideRecord:
        """Give a user a personal quota limit in the server (GLOBAL: a cap across every server)."""
        period = (await self.default_quota(guild_id)).period
        record = await self.repo.set_quota_limit(user_id, check_limit(limit, period), guild_id=guild_id, by=actor,
                                                 now=self.now())
        await self.audit(actor, "quota.set", f"user:{user_id}", {"limit": limit}, guild_id=guild_id)
        return record

    async def clear_limit(self, actor: int, user_id: int, *, guild_id: int) -> bool:
        """Drop a user's personal limit in the server: their role or the server default applies again; False when
        they had none."""
        override = await self.repo.quota_override(user_id, guild_id=guild_id)
        if override is None or override.max_videos is None:
            return False
        await self.repo.set_quota_limit(user_id, None, guild_id=guild_id, by=actor, now=self.now())
        await self.audit(actor, "quota.clear", f"user:{user_id}", guild_id=guild_id)
        return True

    async def reset_usage(self, actor: int, user_id: int, *, guild_id: int) -> QuotaOverrideRecord:
        """Give a user a fresh allowance in the server (GLOBAL: under their cap across every server and in direct
        messages): only videos from now on count this period."""
        record = await self.repo.reset_usage(user_id, guild_id=guild_id, by=actor, now=self.now())
        await self.audit(actor, "quota.reset", f"user:{user_id}", guild_id=guild_id)
        return record

    async def set_default(self, actor: int, limit: int, role_id: int | None = None, *, guild_id: int,
                          period: str | None = None) -> QuotaDefault:
        """Set the server's default quota (and period), or the default of its members holding a role; GLOBAL: the
        bot's default, for servers that set none. Returns the server's default now."""
        if period is not None and period not in QUOTA_PERIODS:
            raise InvalidInput(f"“{shown(period, 20)}” is not a quota period: use {', '.join(QUOTA_PERIODS)}.")
        current = await self.default_quota(guild_id)
        check_limit(limit, period or current.period)
        if role_id is None:
            details = {"limit": limit, **({"period": period} if period else {})}  # as asked: a kept period is no change
            if period is None and guild_id != GLOBAL and not current.own_period:
                period = current.period  # kept: "5 per day" stays so when the operator changes the bot's period
            await self.repo.set_setting(DEFAULT_KEY, limit, guild_id=guild_id, by=actor, now=self.now())
            if period is not None:
                await self.repo.set_setting(PERIOD_KEY, period, guild_id=guild_id, by=actor, now=self.now())
            await self.audit(actor, "quota.default", "server", details, guild_id=guild_id)
        else:
            await self.repo.set_role_quota(role_id, limit, guild_id=guild_id, by=actor, now=self.now())
            await self.audit(actor, "quota.default", f"role:{role_id}", {"limit": limit}, guild_id=guild_id)
        return await self.default_quota(guild_id)

    async def clear_default(self, actor: int, *, guild_id: int) -> bool:
        """Drop the server's own default quota and period (the bot's apply again); False when it had none."""
        removed = [await self.repo.remove_setting(key, guild_id=guild_id) for key in (DEFAULT_KEY, PERIOD_KEY)]
        if any(removed):
            await self.audit(actor, "quota.default.remove", "server", guild_id=guild_id)
        return any(removed)

    async def remove_role_default(self, actor: int, role_id: int, *, guild_id: int) -> bool:
        """Remove a role's default quota in the server; False when it had none."""
        removed = await self.repo.remove_role_quota(role_id, guild_id=guild_id)
        if removed:
            await self.audit(actor, "quota.default.remove", f"role:{role_id}", guild_id=guild_id)
        return removed

    async def block(self, actor: int, user_id: int, reason: str | None, duration: str | None, *,
                    guild_id: int) -> BlockRecord:
        """Block a user in the server (GLOBAL: everywhere) for a duration (text such as 2h or 'permanent');
        InvalidInput for an unreadable one."""
        length = parse_duration(duration)
        now = self.now()
        until = None if length is None else now + length
        reason = " ".join((reason or "").split())[:500]
        reason = "no reason given" if invisible(reason) else reason  # "blocked: ." read as nothing at all
        record = await self.repo.block(user_id, reason, until, guild_id=guild_id, by=actor, now=now)
        await self.audit(actor, "block", f"user:{user_id}",
                         {"reason": reason, "until": None if until is None else until.isoformat()}, guild_id=guild_id)
        return record

    async def unblock(self, actor: int, user_id: int, *, guild_id: int) -> bool:
        """Lift a user's block in the server; False when none held (one that ran out is removed all the same)."""
        lifted = await self.own_block(user_id, guild_id) is not None
        await self.repo.unblock(user_id, guild_id=guild_id)
        await self.audit(actor, "unblock", f"user:{user_id}", {"was_blocked": lifted}, guild_id=guild_id)
        return lifted

    async def set_channel(self, actor: int, channel_id: int, allowed: bool | None, *, guild_id: int) -> bool:
        """Allow or deny /video in a channel of the server, or (None) forget its rule; False when there was
        nothing to forget, or the channel already had that rule (audited only when something changed)."""
        if allowed is None:
            if not await self.repo.remove_channel_rule(channel_id, guild_id=guild_id):
                return False
            action = "channel.reset"
        elif any(rule.channel_id == channel_id and rule.allowed == allowed
                 for rule in await self.repo.channel_rules([guild_id])):
            return False
        else:
            await self.repo.set_channel_rule(channel_id, allowed, guild_id=guild_id, by=actor, now=self.now())
            action = "channel.allow" if allowed else "channel.deny"
        await self.audit(actor, action, f"channel:{channel_id}", guild_id=guild_id)
        return True

    async def stats(self, window: str, *, guild_id: int) -> UsageStats:
        """The server's usage (GLOBAL: every server's) over the last hour/day/week/month (rolling) or ever."""
        if window not in STATS_WINDOWS:
            raise InvalidInput(f"“{shown(window, 20)}” is not a stats period: use {', '.join(STATS_WINDOWS)}.")
        span = STATS_WINDOWS[window]
        return await self.repo.usage_stats(None if span is None else self.now() - span, guild_id=guild_id)

    async def audit(self, actor: int, action: str, target: str | None = None,
                    details: dict[str, Any] | None = None, *, guild_id: int, allowed: bool = True) -> None:
        """Write an audit row of the server (GLOBAL: the operator's) at the moderation clock's time."""
        await self.repo.audit(actor, action, target, details, guild_id=guild_id, allowed=allowed, now=self.now())


def _since(start: datetime, override: QuotaOverrideRecord | None) -> datetime:
    """Where usage is counted from: the period's start, or a moderator's later reset."""
    if override is not None and override.counted_from is not None:
        return max(start, override.counted_from)
    return start


def _with_global(guild_id: int | None) -> list[int]:
    """A server and the scope above every server (direct messages: that one only)."""
    return [GLOBAL] if guild_id is None else [guild_id, GLOBAL]
