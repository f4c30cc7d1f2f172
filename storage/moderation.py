"""Moderation state (quotas, blocks, channel rules, audit log) and usage counts from the jobs log, per server.

Quota usage is counted from the jobs table, never kept in memory: a job counts while it is queued, running or
done, and when it was cancelled after it had started (its GPU time was spent). Refused jobs, failed jobs and jobs
cancelled before they ran are refunded. A job counts for its params' `cost` in quota units (videos): 1 for /video
and for rows written before costs existed, UPSCALE_COST for an upscale. The SQL is portable between SQLite and
PostgreSQL; upserts use each dialect's INSERT ... ON CONFLICT.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, and_, delete, desc, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Base, Job
from storage.moderation_models import AuditEntry, Block, ChannelRule, ModerationSetting, QuotaOverride, RoleQuota
from storage.moderation_records import (
    AuditRecord,
    BlockRecord,
    ChannelRuleRecord,
    QuotaOverrideRecord,
    RoleQuotaRecord,
    ServerUsage,
    UsageStats,
    UserUsage,
)
from storage.records import GLOBAL, JobState
from storage.transactions import PRUNE_BATCH, Transactional

log = logging.getLogger(__name__)

# The far end of a stats window. SQLite keeps no statistics of ranges: to its planner a window open at one end
# (created_at >= ?) holds a quarter of the jobs log, and it reads a whole index that spares it a GROUP BY's sort
# instead; a closed one looks narrow, and is read through ix_jobs_created_at (or a server's index).
END_OF_TIME = datetime(9999, 12, 31, tzinfo=UTC)

T = TypeVar("T")
M = TypeVar("M", bound=Base)

COUNTED = or_(
    Job.state.in_([JobState.QUEUED, JobState.RUNNING, JobState.DONE]),
    and_(Job.state == JobState.CANCELLED, Job.started_at.is_not(None)),
)  # the jobs that use up quota
COST = func.coalesce(Job.params["cost"].as_integer(), 1)  # quota units of one job (JSON path: SQLite and PostgreSQL)
_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


class ModerationRepository(Transactional):
    """Async access to the moderation tables; each method is one short transaction, retried while busy.

    Every method names the server it reads or changes (`guild_id`, GLOBAL for the operator's rows), so nothing a
    server's moderators do can read or touch another server's rows.
    """

    # --- quotas -----------------------------------------------------------------------------------------------

    async def count_usage(self, user_id: int, since: datetime, *, guild_id: int | None) -> int:
        """Quota units used by the user's jobs created at or after `since` (see COUNTED and COST) in one server
        (None: in direct messages; GLOBAL: everywhere)."""
        query = select(func.coalesce(func.sum(COST), 0)).where(Job.user_id == user_id, Job.created_at >= since,
                                                               COUNTED, *_jobs_in(guild_id))
        return int(await self._run(lambda session: _scalar(session, query)))

    async def quota_override(self, user_id: int, *, guild_id: int) -> QuotaOverrideRecord | None:
        """The user's personal quota row in the server, or None."""
        return await self._get(QuotaOverride, (guild_id, user_id), _override_record)

    async def set_quota_limit(self, user_id: int, max_videos: int | None, *, guild_id: int, by: int,
                              now: datetime | None = None) -> QuotaOverrideRecord:
        """Give the user a personal limit in the server (None: back to the defaults), keeping any usage reset."""
        values = {"max_videos": max_videos, "set_by": by, "set_at": self._now(now)}
        return await self._upsert(QuotaOverride, {"guild_id": guild_id, "user_id": user_id}, values,
                                  _override_record)

    async def reset_usage(self, user_id: int, *, guild_id: int, by: int,
                          now: datetime | None = None) -> QuotaOverrideRecord:
        """Count the user's usage in the server from now on (earlier jobs this period are forgiven), keeping any
        limit."""
        now = self._now(now)
        values = {"counted_from": now, "set_by": by, "set_at": now}
        return await self._upsert(QuotaOverride, {"guild_id": guild_id, "user_id": user_id}, values,
                                  _override_record)

    async def role_quotas(self, role_ids: Iterable[int] | None = None, *, guild_id: int) -> list[RoleQuotaRecord]:
        """The server's role defaults for these roles (all of its roles when None), by role id."""
        query = select(RoleQuota).where(RoleQuota.guild_id == guild_id).order_by(RoleQuota.role_id)
        if role_ids is not None:
            query = query.where(RoleQuota.role_id.in_(list(role_ids)))
        return await self._all(query, _role_record)

    async def set_role_quota(self, role_id: int, max_videos: int, *, guild_id: int, by: int,
                             now: datetime | None = None) -> RoleQuotaRecord:
        """Set the quota of the server's members holding this role."""
        values = {"max_videos": max_videos, "set_by": by, "set_at": self._now(now)}
        return await self._upsert(RoleQuota, {"guild_id": guild_id, "role_id": role_id}, values, _role_record)

    async def remove_role_quota(self, role_id: int, *, guild_id: int) -> bool:
        """Remove a role default of the server; False when it had none."""
        return await self._delete(delete(RoleQuota).where(RoleQuota.guild_id == guild_id,
                                                          RoleQuota.role_id == role_id))

    async def setting(self, key: str, *, guild_id: int) -> Any:
        """A value the server's moderators (GLOBAL: the operator) set at run time, or None."""
        row = await self._get(ModerationSetting, (guild_id, key), lambda row: row)
        return None if row is None else row.value

    async def set_setting(self, key: str, value: Any, *, guild_id: int, by: int, now: datetime | None = None) -> None:
        """Store a value (JSON) of the server."""
        values = {"value": value, "set_by": by, "set_at": self._now(now)}
        await self._upsert(ModerationSetting, {"guild_id": guild_id, "key": key}, values, lambda row: row)

    async def remove_setting(self, key: str, *, guild_id: int) -> bool:
        """Forget a value of the server (its default applies again); False when it had none."""
        return await self._delete(delete(ModerationSetting).where(ModerationSetting.guild_id == guild_id,
                                                                  ModerationSetting.key == key))

    # --- blocks and channels ----------------------------------------------------------------------------------

    async def block(self, user_id: int, reason: str, until: datetime | None, *, guild_id: int, by: int,
                    now: datetime | None = None) -> BlockRecord:
        """Block a user in the server (GLOBAL: everywhere) until `until` (None: until unblocked), replacing any
        earlier block there."""
        values = {"reason": reason, "until": until, "blocked_by": by, "blocked_at": self._now(now)}
        return await self._upsert(Block, {"guild_id": guild_id, "user_id": user_id}, values, _block_record)

    async def unblock(self, user_id: int, *, guild_id: int) -> bool:
        """Lift a user's block in the server; False when there was none."""
        return await self._delete(delete(Block).where(Block.guild_id == guild_id, Block.user_id == user_id))

    async def active_block(self, user_id: int, guild_ids: Iterable[int],
                           now: datetime | None = None) -> BlockRecord | None:
        """The user's block in any of these servers that still holds at `now` (the one that lasts longest), else
        None (expired blocks are simply ignored)."""
        now = self._now(now)
        query = select(Block).where(Block.user_id == user_id, Block.guild_id.in_(list(guild_ids)),
                                    or_(Block.until.is_(None), Block.until > now))
        found = await self._all(query, _block_record)
        return max(found, key=_lasting, default=None)

    async def active_blocks(self, now: datetime | None = None, *, guild_id: int) -> list[BlockRecord]:
        """Every block of the server that still holds at `now`, newest first."""
        now = self._now(now)
        query = (select(Block).where(Block.guild_id == guild_id, or_(Block.until.is_(None), Block.until > now))
                 .order_by(desc(Block.blocked_at)))
        return await self._all(query, _block_record)

    async def set_channel_rule(self, channel_id: int, allowed: bool, *, guild_id: int, by: int,
                               now: datetime | None = None) -> ChannelRuleRecord:
        """Allow or deny /video in a channel of the server, replacing any earlier rule for it."""
        values = {"allowed": allowed, "set_by": by, "set_at": self._now(now)}
        return await self._upsert(ChannelRule, {"guild_id": guild_id, "channel_id": channel_id}, values,
                                  _channel_record)

    async def remove_channel_rule(self, channel_id: int, *, guild_id: int) -> bool:
        """Forget a channel's rule in the server; False when there was none."""
        return await self._delete(delete(ChannelRule).where(ChannelRule.guild_id == guild_id,
                                                            ChannelRule.channel_id == channel_id))

    async def channel_rules(self, guild_ids: Iterable[int]) -> list[ChannelRuleRecord]:
        """Every channel rule of these servers, by channel id."""
        query = select(ChannelRule).where(ChannelRule.guild_id.in_(list(guild_ids))).order_by(ChannelRule.channel_id)
        return await self._all(query, _channel_record)

    # --- audit and statistics ---------------------------------------------------------------------------------

    async def prune_audit(self, before: datetime, *, keep: Iterable[str] = (), batch: int = PRUNE_BATCH) -> int:
        """Delete the audit rows written before `before`, in every server, except those of the actions in `keep`
        (rows the bot reads back: audited_targets) and the newest row; the number deleted."""
        before = self._now(before)
        last = await self._last_id_before(AuditEntry.id, AuditEntry.at, before)
        if last is None:
            return 0
        deleted = await self._delete_old(AuditEntry.id, AuditEntry.id <= last, AuditEntry.at < before,
                                         AuditEntry.action.not_in(list(keep)), batch=batch)
        if deleted:
            log.info("deleted %d audit rows written before %s", deleted, before.isoformat())
        return deleted

    async def audit(self, actor_id: int, action: str, target: str | None = None,
                    details: Mapping[str, Any] | None = None, *, guild_id: int, allowed: bool = True,
                    now: datetime | None = None) -> AuditRecord:
        """Write one audit row of the server: who did what to what, when, and whether they were allowed to."""
        row = {"guild_id": guild_id, "actor_id": actor_id, "action": action[:64],
               "target": None if target is None else target[:200], "details": dict(details or {}),
               "at": self._now(now), "allowed": allowed}

        async def work(session: AsyncSession) -> AuditRecord:
            entry = AuditEntry(**row)
            session.add(entry)
            await session.flush()
            return _audit_record(entry)

        record = await self._run(work)
        log.info("audit in %s: %s by %d on %s (%s)", _scope_name(guild_id), action, actor_id, target,
                 "done" if allowed else "refused")
        return record

    async def audited_targets(self, actions: Iterable[str], *, guild_id: int | None) -> set[str]:
        """The targets of the server's (None: any server's) allowed audit rows of these actions: what was ever done
        to what."""
        query = select(AuditEntry.target).distinct().where(
            AuditEntry.action.in_(list(actions)), AuditEntry.allowed.is_(True), AuditEntry.target.is_not(None),
            *([] if guild_id is None else [AuditEntry.guild_id == guild_id]))

        async def work(session: AsyncSession) -> set[str]:
            return set((await session.execute(query)).scalars())

        return await self._run(work)

    async def latest_audit(self, limit: int = 10, *, guild_id: int) -> list[AuditRecord]:
        """The server's newest audit rows, newest first."""
        query = select(AuditEntry).where(AuditEntry.guild_id == guild_id).order_by(desc(AuditEntry.id)).limit(limit)
        return await self._all(query, _audit_record)

    async def usage_stats(self, since: datetime | None, *, guild_id: int | None, top: int = 5) -> UsageStats:
        """Requests by state and refusal reason, GPU time and the `top` busiest users since `since` (None: ever),
        in one server (None: in direct messages; GLOBAL: everywhere)."""
        window = [*_created_since(since), *_jobs_in(guild_id)]

        async def work(session: AsyncSession) -> UsageStats:
            states = (await session.execute(select(Job.state, func.count()).where(*window).group_by(Job.state))).all()
            refused = (await session.execute(_refusal_counts(window))).all()
            gpu = await _scalar(session, select(func.coalesce(func.sum(Job.gpu_s), 0.0)).where(*window))
            users = (await session.execute(_top_users(window, top))).all()
            return UsageStats(
                since=since, requests=sum(count for _, count in states),
                by_state={str(JobState(state)): count for state, count in states},
                refusals={str(reason): count for reason, count in refused}, gpu_s=float(gpu),
                top_users=tuple(UserUsage(uid, name, count, float(gpu_s)) for uid, name, count, gpu_s in users),
            )

        return await self._run(work)

    async def server_usage(self, since: datetime | None) -> list[ServerUsage]:
        """Requests and distinct users per server since `since` (None: ever), busiest first, direct messages last
        among equals."""
        query = (select(Job.guild_id, func.count(), func.count(func.distinct(Job.user_id)))
                 .where(*_created_since(since)).group_by(Job.guild_id))

        async def work(session: AsyncSession) -> list[ServerUsage]:
            found = [ServerUsage(guild, n, users) for guild, n, users in (await session.execute(query)).all()]
            return sorted(found, key=lambda row: (-row.requests, row.guild_id is None, row.guild_id or 0))

        return await self._run(work)

    # --- helpers ----------------------------------------------------------------------------------------------

    async def _get(self, model: type[M], key: Any, record: Callable[[M], T]) -> T | None:
        """The row with this primary key as a record, or None."""

        async def work(session: AsyncSession) -> T | None:
            row = await session.get(model, key)
            return None if row is None else record(row)

        return await self._run(work)

    async def _all(self, query: Any, record: Callable[[Any], T]) -> list[T]:
        """Every row the query selects, as records."""

        async def work(session: AsyncSession) -> list[T]:
            return [record(row) for row in (await session.scalars(query)).all()]

        return await self._run(work)

    async def _delete(self, statement: Any) -> bool:
        """Run a DELETE; True when it removed a row."""

        async def work(session: AsyncSession) -> bool:
            return (await session.execute(statement)).rowcount > 0  # type: ignore[attr-defined]

        return await self._run(work)

    async def _upsert(self, model: type[M], key: dict[str, Any], values: dict[str, Any],
                      record: Callable[[M], T]) -> T:
        """Insert the row, or update `values` on the existing one (INSERT ... ON CONFLICT), and return it."""
        statement = _INSERTS[self._dialect](model).values(**key, **values)
        statement = statement.on_conflict_do_update(index_elements=list(key),
                                                    set_={name: statement.excluded[name] for name in values})

        async def work(session: AsyncSession) -> T:
            await session.execute(statement)
            row = await session.get(model, tuple(key.values()), populate_existing=True)
            assert row is not None, f"{model.__tablename__} row {key} vanished inside its own transaction"
            return record(row)

        return await self._run(work)

async def _scalar(session: AsyncSession, query: Any) -> Any:
    """The single value a query returns."""
    return (await session.execute(query)).scalar_one()


def _refusal_counts(window: list[ColumnElement[bool]]) -> Any:
    """Refused requests per reason, most frequent first."""
    count = func.count().label("n")
    return (select(Job.refusal_reason, count).where(Job.state == JobState.REFUSED, *window)
            .group_by(Job.refusal_reason).order_by(desc(count), Job.refusal_reason))


def _top_users(window: list[ColumnElement[bool]], top: int) -> Any:
    """Users by accepted requests (refused ones excluded), with their GPU seconds."""
    count = func.count().label("n")
    gpu = func.coalesce(func.sum(Job.gpu_s), 0.0)
    return (select(Job.user_id, func.max(Job.user_name), count, gpu)
            .where(Job.state != JobState.REFUSED, *window)
            .group_by(Job.user_id).order_by(desc(count), Job.user_id).limit(top))


def _created_since(since: datetime | None) -> list[ColumnElement[bool]]:
    """The jobs created at or after `since` (None: every job), as a closed window (END_OF_TIME)."""
    return [] if since is None else [Job.created_at.between(since, END_OF_TIME)]


def _jobs_in(guild_id: int | None) -> list[ColumnElement[bool]]:
    """The jobs of one server: None, those of direct messages; GLOBAL, every job."""
    if guild_id is None:
        return [Job.guild_id.is_(None)]
    return [] if guild_id == GLOBAL else [Job.guild_id == guild_id]


def _scope_name(guild_id: int) -> str:
    """A server for logs: its id, or "every server" for GLOBAL."""
    return "every server" if guild_id == GLOBAL else f"server {guild_id}"


def _lasting(block: BlockRecord) -> tuple[bool, datetime]:
    """Orders blocks by how long they hold: permanent ones last, the rest by their end."""
    return block.until is None, block.until or block.blocked_at


def _override_record(row: QuotaOverride) -> QuotaOverrideRecord:
    return QuotaOverrideRecord(row.guild_id, row.user_id, row.max_videos, row.counted_from, row.set_by, row.set_at)


def _role_record(row: RoleQuota) -> RoleQuotaRecord:
    return RoleQuotaRecord(row.guild_id, row.role_id, row.max_videos, row.set_by, row.set_at)


def _block_record(row: Block) -> BlockRecord:
    return BlockRecord(row.guild_id, row.user_id, row.reason, row.until, row.blocked_by, row.blocked_at)


def _channel_record(row: ChannelRule) -> ChannelRuleRecord:
    return ChannelRuleRecord(row.guild_id, row.channel_id, row.allowed, row.set_by, row.set_at)


def _audit_record(row: AuditEntry) -> AuditRecord:
    return AuditRecord(row.id, row.guild_id, row.actor_id, row.action, row.target, dict(row.details), row.at,
                       row.allowed)
