"""The jobs usage log and the denylist behind short async transactions that return frozen records."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.errors import DuplicateEntryError, InvalidTransitionError, JobNotFoundError
from storage.models import DenylistEntry, Job, ShowcaseEntry
from storage.records import (
    ACTIVE_STATES,
    GLOBAL,
    Delivery,
    DenyKind,
    DenylistRecord,
    JobRecord,
    JobState,
    StopRequester,
)
from storage.transactions import PRUNE_BATCH, Transactional

log = logging.getLogger(__name__)


_LOGGED_NAMES = 20  # a log line names at most this many, then says how many more

_QUEUED = frozenset({JobState.QUEUED})
_RUNNING = frozenset({JobState.RUNNING})
_DONE = frozenset({JobState.DONE})



class Repository(Transactional):
    """Async access to jobs and denylist entries; each method is one short transaction, retried while busy."""

    # --- jobs -------------------------------------------------------------------------------------------------

    async def create_job(
        self,
        *,
        user_id: int,
        user_name: str,
        channel_id: int,
        prompt: str,
        params: Mapping[str, Any],
        guild_id: int | None = None,
        negative_prompt: str = "",
        seed: int | None = None,
        refusal_reason: str | None = None,
        interaction_token: str | None = None,
        application_id: int | None = None,
        now: datetime | None = None,
    ) -> JobRecord:
        """Log a request: state queued, or refused (and finished at once) when `refusal_reason` is given."""
        now = self._now(now)
        refused = refusal_reason is not None
        fields = {
            "user_id": user_id,
            "user_name": user_name,
            "guild_id": guild_id,
            "channel_id": channel_id,
            "prompt": prompt,
            "negative_prompt": negative_prompt,
            "params": dict(params),
            "seed": seed,
            "state": JobState.REFUSED if refused else JobState.QUEUED,
            "refusal_reason": refusal_reason,
            "created_at": now,
            "finished_at": now if refused else None,
            "interaction_token": interaction_token,
            "application_id": application_id,
        }

        async def work(session: AsyncSession) -> JobRecord:
            job = Job(**fields)
            session.add(job)
            await session.flush()
            return _job_record(job)

        record = await self._run(work)
        log.info("job %d %s for user %d (%s)", record.id, record.state, user_id, refusal_reason or "accepted")
        return record

    async def get_job(self, job_id: int) -> JobRecord | None:
        """The job with this id, or None."""

        async def work(session: AsyncSession) -> JobRecord | None:
            job = await session.get(Job, job_id)
            return None if job is None else _job_record(job)

        return await self._run(work)

    async def mark_running(self, job_id: int, *, now: datetime | None = None) -> JobRecord:
        """queued → running: stamp started_at and queue_wait_s, count one more attempt."""
        now = self._now(now)

        def changes(job: Job) -> dict[str, Any]:
            return {"started_at": now, "attempts": job.attempts + 1, "queue_wait_s": _seconds(job.created_at, now)}

        return await self._transition(job_id, JobState.RUNNING, _QUEUED, changes)

    async def mark_done(
        self,
        job_id: int,
        *,
        seed: int,
        gpu_s: float,
        output_bytes: int,
        result_message_id: int | None = None,
        now: datetime | None = None,
    ) -> JobRecord:
        """running → done, with the seed used, GPU seconds, video size and the posted message (else the video's
        delivery is pending until `set_result_message` or `mark_undelivered`)."""
        now = self._now(now)
        changes = {
            "finished_at": now,
            "seed": seed,
            "gpu_s": gpu_s,
            "output_bytes": output_bytes,
            "result_message_id": result_message_id,
            "delivery": Delivery.PENDING if result_message_id is None else Delivery.POSTED,
        }
        return await self._transition(job_id, JobState.DONE, _RUNNING, lambda _job: changes)

    async def mark_failed(self, job_id: int, error: str, *, now: datetime | None = None) -> JobRecord:
        """queued or running → failed, keeping the error text."""
        now = self._now(now)
        return await self._transition(
            job_id, JobState.FAILED, ACTIVE_STATES, lambda _job: {"finished_at": now, "error": error}
        )

    async def mark_cancelled(self, job_id: int, *, now: datetime | None = None, charged: bool = True) -> JobRecord:
        """queued or running → cancelled. A job cancelled after it started counts against its requester's quota
        (storage.moderation COUNTED: its GPU time was spent), unless `charged` is False (a moderator stopped it, not
        its requester): then its start is cleared, so it counts as one cancelled before it ran."""
        now = self._now(now)
        changes = {"finished_at": now} if charged else {"finished_at": now, "started_at": None}
        return await self._transition(job_id, JobState.CANCELLED, ACTIVE_STATES, lambda _job: changes)

    async def requeue(self, job_id: int) -> JobRecord:
        """running → queued (restart recovery); attempts are kept so the caller can retry only once."""
        return await self._transition(job_id, JobState.QUEUED, _RUNNING, lambda _job: {"started_at": None})

    async def request_cancel(self, job_id: int, *, by: StopRequester | None = None) -> JobRecord:
        """Flag a queued or running job for cancellation; the executor notices and stops it. `by`: who asked, when not
        its requester (a moderator, a block), so that a restart before it stops still cancels it uncharged."""
        changes = {"cancel_requested": True, "stop_requested_by": by}
        return await self._transition(job_id, "cancel requested", ACTIVE_STATES, lambda _job: changes)

    async def set_status_message(self, job_id: int, message_id: int) -> JobRecord:
        """Remember the Discord message that shows this job's progress."""
        return await self._set(job_id, status_message_id=message_id)

    async def set_result_message(self, job_id: int, message_id: int) -> JobRecord:
        """Remember the Discord message that carries this job's video (its buttons name the job): it is posted."""
        return await self._set(job_id, result_message_id=message_id, delivery=Delivery.POSTED)

    async def resize(self, job_id: int, width: int, height: int) -> JobRecord:
        """Set the size a job renders at in its params (a queued job restored under a model of other sizes)."""

        async def work(session: AsyncSession) -> JobRecord:
            job = await _load(session, job_id)
            job.params = {**job.params, "width": width, "height": height}
            await session.flush()
            return _job_record(job)

        return await self._run(work)

    async def jobs_of_result_messages(self, message_ids: Iterable[int]) -> list[JobRecord]:
        """The jobs whose video was posted as one of these Discord messages (result_message_id), in id order: what a
        message deleted in Discord was (indexed: every message deleted where the bot reads asks)."""
        ids = list(message_ids)
        return await self._select_jobs(Job.result_message_id.in_(ids)) if ids else []

    async def undelivered(self) -> list[JobRecord]:
        """Done jobs whose video's post was never made or recorded (the process ended during it), oldest first."""
        return await self._select_jobs(Job.state == JobState.DONE, Job.delivery == Delivery.PENDING)

    async def mark_undelivered(self, job_id: int, error: str, *, now: datetime | None = None) -> JobRecord:
        """done → failed, for a video that never reached its requester (Discord refused it, or a stop cut its post
        short and it cannot be made again): not charged, never posted later."""
        now = self._now(now)
        return await self._transition(job_id, JobState.FAILED, _DONE,
                                      lambda _job: {"finished_at": now, "error": error, "delivery": Delivery.UNPOSTED})

    async def prune_jobs(self, before: datetime, *, batch: int = PRUNE_BATCH) -> int:
        """Delete the jobs log's finished rows created before `before`; kept: jobs queued or running, a video whose
        post is pending, jobs with a showcase entry (their entry and its votes would go with them), and the newest
        row (SQLite would hand its id out again: a button on an old message would name a new job). The number
        deleted."""
        before = self._now(before)
        last = await self._last_id_before(Job.id, Job.created_at, before)
        if last is None:
            return 0
        deleted = await self._delete_old(
            Job.id, Job.id <= last, Job.created_at < before, Job.state.not_in(ACTIVE_STATES),
            or_(Job.delivery.is_(None), Job.delivery != Delivery.PENDING),
            ~exists().where(ShowcaseEntry.job_id == Job.id), batch=batch)
        if deleted:
            log.info("deleted %d jobs created before %s from the jobs log", deleted, before.isoformat())
        return deleted

    async def last_job_id(self) -> int:
        """The highest job id the database has handed out that a row still holds (prune_jobs keeps the newest row);
        0 without jobs. Every id above it is yet to come: a file named after one is another database's."""

        async def work(session: AsyncSession) -> int:
            return int(await session.scalar(select(func.max(Job.id))) or 0)

        return await self._run(work)

    async def list_jobs(self, states: Iterable[JobState] | None = None) -> list[JobRecord]:
        """Jobs in the given states (all when None), oldest id first: the queue to rebuild at start."""
        return await self._select_jobs(*_state_filter(states))

    async def recent_render_seconds(self, limit: int) -> list[float]:
        """The GPU seconds of the last `limit` finished videos, oldest first: what the ETA learns from at start."""
        if limit < 1:
            raise ValueError(f"limit must be ≥ 1, got {limit}")
        query = (select(Job.gpu_s).where(Job.state == JobState.DONE, Job.gpu_s.is_not(None))
                 .order_by(Job.finished_at.desc(), Job.id.desc()).limit(limit))

        async def work(session: AsyncSession) -> list[float]:
            return [float(seconds) for seconds in (await session.scalars(query)).all()][::-1]

        return await self._run(work)

    # --- denylist ---------------------------------------------------------------------------------------------

    async def list_denylist(self, kind: DenyKind | None = None, *,
                            guild_ids: Iterable[int] | None = None) -> list[DenylistRecord]:
        """Denylist entries (of one kind, or all) of these servers (GLOBAL: the shared list; None: every server's),
        oldest first."""
        query = select(DenylistEntry).order_by(DenylistEntry.id)
        if kind is not None:
            query = query.where(DenylistEntry.kind == DenyKind(kind))
        if guild_ids is not None:
            query = query.where(DenylistEntry.guild_id.in_(list(guild_ids)))

        async def work(session: AsyncSession) -> list[DenylistRecord]:
            return [_denylist_record(entry) for entry in (await session.scalars(query)).all()]

        return await self._run(work)

    async def add_denylist_entry(
        self,
        pattern: str,
        category: str,
        kind: DenyKind = DenyKind.DENY,
        added_by: int | None = None,
        *,
        guild_id: int = GLOBAL,
        now: datetime | None = None,
    ) -> DenylistRecord:
        """Add a pattern to a server's list (GLOBAL: the shared one); DuplicateEntryError when that list has it."""
        if not pattern.strip():
            raise ValueError("a denylist pattern must not be empty")
        kind, now = DenyKind(kind), self._now(now)

        async def work(session: AsyncSession) -> DenylistRecord:
            entry = DenylistEntry(guild_id=guild_id, pattern=pattern, category=category, kind=kind, added_by=added_by,
                                  created_at=now)
            session.add(entry)
            try:
                await session.flush()
            except IntegrityError as error:
                raise DuplicateEntryError(pattern, kind, guild_id) from error
            return _denylist_record(entry)

        record = await self._run(work)
        log.info("denylist %s entry %r (%s) of %s added by %s", kind, pattern, category, _list_name(guild_id),
                 added_by)
        return record

    async def remove_denylist_entry(self, pattern: str, kind: DenyKind = DenyKind.DENY, *,
                                    guild_id: int = GLOBAL) -> bool:
        """Remove a pattern from a server's list (GLOBAL: the shared one); False when that list has none."""
        query = delete(DenylistEntry).where(DenylistEntry.guild_id == guild_id, DenylistEntry.pattern == pattern,
                                            DenylistEntry.kind == DenyKind(kind))

        async def work(session: AsyncSession) -> bool:
            return (await session.execute(query)).rowcount > 0  # type: ignore[attr-defined]

        removed = await self._run(work)
        log.info("denylist %s entry %r of %s %s", kind, pattern, _list_name(guild_id),
                 "removed" if removed else "was not present")
        return removed

    async def seed_denylist(self, entries: Iterable[tuple[str, str, str]], *,
                            skip: Iterable[tuple[str, str]] = (),
                            renamed: Mapping[tuple[str, str], str] | None = None,
                            now: datetime | None = None) -> int:
        """Insert the shipped defaults (pattern, category, kind) that the shared list lacks, except those of `skip`
        ((pattern, kind): what its editors removed), so a new release's entries reach an existing database; returns
        rows added.

        `renamed` maps a shipped entry's old name (pattern, kind) to its new pattern. The old name's row is deleted
        while it is still a shipped one (the shared list's, added_by None; an editor's own row of that pattern stays),
        in the transaction that adds the new name; where the shared list no longer has it and its removal is in `skip`,
        the removal carries over and the new name is not added."""
        now, unique = self._now(now), {}
        skipped = {(pattern, DenyKind(kind)) for pattern, kind in skip}
        renames = {(old, DenyKind(kind)): new for (old, kind), new in (renamed or {}).items()}
        for pattern, category, kind in entries:
            unique.setdefault((pattern, DenyKind(kind)), category)
        stored = select(DenylistEntry.pattern, DenylistEntry.kind, DenylistEntry.added_by).where(
            DenylistEntry.guild_id == GLOBAL)

        async def work(session: AsyncSession) -> tuple[list[tuple[str, DenyKind]], list[tuple[str, DenyKind]]]:
            rows = (await session.execute(stored)).all()
            shipped = {(pattern, kind) for pattern, kind, added_by in rows if added_by is None}
            retired = [key for key in renames if key in shipped]
            carried = {(renames[old, kind], kind) for old, kind in renames if (old, kind) in skipped - shipped}
            for old, kind in retired:
                await session.execute(delete(DenylistEntry).where(
                    DenylistEntry.guild_id == GLOBAL, DenylistEntry.pattern == old, DenylistEntry.kind == kind,
                    DenylistEntry.added_by.is_(None)))
            have = {(pattern, kind) for pattern, kind, _ in rows}.difference(retired)
            missing = [key for key in unique if key not in have and key not in skipped and key not in carried]
            session.add_all(
                DenylistEntry(guild_id=GLOBAL, pattern=pattern, category=unique[pattern, kind], kind=kind,
                              added_by=None, created_at=now)
                for pattern, kind in missing
            )
            return missing, retired

        added, retired = await self._run(work)
        replaced = {(renames[old, kind], kind) for old, kind in retired}
        gained = [pattern for pattern, kind in added if (pattern, kind) not in replaced]
        if gained:
            log.info("the shared denylist gained %d shipped entries: %s", len(gained), _first_of(gained, _LOGGED_NAMES))
        if retired:
            log.info("the shared denylist renamed shipped entries: %s",
                     _first_of([f"{kind} {old!r} → {renames[old, kind]!r}" for old, kind in retired], _LOGGED_NAMES))
        return len(added)

    # --- helpers ----------------------------------------------------------------------------------------------

    async def _transition(
        self,
        job_id: int,
        target: JobState | str,
        allowed: frozenset[JobState],
        changes: Callable[[Job], dict[str, Any]],
    ) -> JobRecord:
        """Apply `changes` (plus the new state) only if the job is in `allowed`, guarded against races."""
        values = {"state": target} if isinstance(target, JobState) else {}

        async def work(session: AsyncSession) -> JobRecord:
            job = await _load(session, job_id)
            if job.state not in allowed:
                raise InvalidTransitionError(job_id, job.state, target, allowed)
            seen = job.state
            guarded = update(Job).where(Job.id == job_id, Job.state == seen).values(**values, **changes(job))
            result = await session.execute(guarded.execution_options(synchronize_session=False))
            await session.refresh(job)
            if result.rowcount == 0:  # type: ignore[attr-defined]  # another task moved it between read and write
                raise InvalidTransitionError(job_id, job.state, target, allowed)
            return _job_record(job)

        record = await self._run(work)
        log.debug("job %d → %s", job_id, target)
        return record

    async def _set(self, job_id: int, **values: Any) -> JobRecord:
        """Overwrite some columns of a job in any state."""

        async def work(session: AsyncSession) -> JobRecord:
            job = await _load(session, job_id)
            for name, value in values.items():
                setattr(job, name, value)
            await session.flush()
            return _job_record(job)

        return await self._run(work)

    async def _select_jobs(self, *criteria: ColumnElement[bool]) -> list[JobRecord]:
        """Jobs matching all criteria, in id order."""
        query = select(Job).where(*criteria).order_by(Job.id)

        async def work(session: AsyncSession) -> list[JobRecord]:
            return [_job_record(job) for job in (await session.scalars(query)).all()]

        return await self._run(work)

async def _load(session: AsyncSession, job_id: int) -> Job:
    """The job row, or JobNotFoundError."""
    job = await session.get(Job, job_id)
    if job is None:
        raise JobNotFoundError(job_id)
    return job


def _state_filter(states: Iterable[JobState] | None) -> list[ColumnElement[bool]]:
    """A WHERE clause for the given states; none when `states` is None."""
    return [] if states is None else [Job.state.in_([JobState(state) for state in states])]


def _seconds(start: datetime, end: datetime) -> float:
    """Seconds from start to end."""
    return (end - start).total_seconds()


def _job_record(job: Job) -> JobRecord:
    """Copy an ORM row into a frozen record (params copied so callers cannot mutate the session's dict)."""
    values = {name: getattr(job, name) for name in JobRecord.__dataclass_fields__}
    delivery = None if job.delivery is None else Delivery(job.delivery)
    stop = None if job.stop_requested_by is None else StopRequester(job.stop_requested_by)
    return JobRecord(**{**values, "state": JobState(job.state), "params": dict(job.params), "delivery": delivery,
                        "stop_requested_by": stop})


def _first_of(names: list[str], limit: int) -> str:
    """Names for a log line: the first `limit`, then how many were left out ("a, b, c (and 37 more)")."""
    left_out = len(names) - limit
    return ", ".join(names[:limit]) + (f" (and {left_out} more)" if left_out > 0 else "")


def _list_name(guild_id: int) -> str:
    """A denylist for logs: a server's, or the shared one."""
    return "the shared list" if guild_id == GLOBAL else f"server {guild_id}"


def _denylist_record(entry: DenylistEntry) -> DenylistRecord:
    """Copy an ORM row into a frozen record."""
    values = {name: getattr(entry, name) for name in DenylistRecord.__dataclass_fields__}
    return DenylistRecord(**{**values, "kind": DenyKind(entry.kind)})
