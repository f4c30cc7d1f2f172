"""Deleted results, showcase nominations, moderators' decisions and ⭐ votes, as short transactions.

A nomination belongs to the server its job was made in: only that server's moderators see and decide it, and the
gallery lists each server's approved videos apart (or all of them together, for the front page).

What the gallery shows is decided here (`_shown`): approved entries of undeleted jobs whose author is not blocked,
at the time of the query, in the entry's server or everywhere (GLOBAL). A block hides its user's videos while it
holds and deletes nothing: once it is lifted or runs out they show again, with their votes.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, delete, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.errors import JobNotFoundError, ShowcaseError
from storage.models import Job, ShowcaseEntry, ShowcaseVote
from storage.moderation_models import Block
from storage.records import GLOBAL, JobRecord, JobState, ShowcaseRecord, ShowcaseState
from storage.repository import _job_record
from storage.transactions import Transactional

log = logging.getLogger(__name__)

T = TypeVar("T")


class ShowcaseRepository(Transactional):
    """Async access to result deletion, showcase entries and votes; one short transaction per method."""

    # --- results ----------------------------------------------------------------------------------------------

    async def delete_job(self, job_id: int, *, now: datetime | None = None) -> JobRecord:
        """Mark a job's result deleted; it leaves the showcase and the gallery. Only an undeleted job is changed, so of
        two deletions at the same moment (two confirmations pressed at once) one wins and the other gets
        ShowcaseError ("deleted"), as it does any time after; JobNotFoundError for no such job."""
        now = now or self._clock()
        undeleted = (Job.id == job_id, Job.deleted_at.is_(None))

        async def work(session: AsyncSession) -> JobRecord:
            taken = (await session.execute(update(Job).where(*undeleted).values(deleted_at=now))).rowcount  # type: ignore[attr-defined]
            job = await session.get(Job, job_id, populate_existing=True)
            if job is None:
                raise JobNotFoundError(job_id)
            if not taken:  # deleted before, or by another deletion since this one was asked
                raise ShowcaseError("deleted", f"Job #{job_id} was deleted already.")
            return _job_record(job)

        record = await self._run(work)
        log.info("job %d marked deleted", job_id)
        return record

    # --- nominations and decisions ----------------------------------------------------------------------------

    async def nominate(self, job_id: int, user_id: int, *, now: datetime | None = None) -> ShowcaseRecord:
        """Put a finished, public, undeleted result up for the showcase; ShowcaseError says why not."""
        now = now or self._clock()

        async def work(session: AsyncSession) -> ShowcaseRecord:
            job = await session.get(Job, job_id)
            _check_showable(job, job_id)
            assert job is not None and job.guild_id is not None
            entry = ShowcaseEntry(guild_id=job.guild_id, job_id=job_id, nominated_by=user_id, nominated_at=now,
                                  state=ShowcaseState.PENDING)
            try:
                async with session.begin_nested():
                    session.add(entry)
            except IntegrityError:
                existing = await self._entry(session, ShowcaseEntry.job_id == job_id)
                state = existing.state if existing else "nominated"
                raise ShowcaseError("already", f"Job #{job_id} was already nominated ({state}).") from None
            return await self._require(session, job_id)

        record = await self._run(work)
        log.info("job %d nominated for the showcase by user %d (entry %d)", job_id, user_id, record.id)
        return record

    async def get(self, job_id: int) -> ShowcaseRecord | None:
        """The showcase entry of a job, or None."""
        return await self._run(lambda session: self._entry(session, ShowcaseEntry.job_id == job_id))

    async def get_entry(self, entry_id: int) -> ShowcaseRecord | None:
        """The showcase entry with this id, or None."""
        return await self._run(lambda session: self._entry(session, ShowcaseEntry.id == entry_id))

    async def pending(self, limit: int = 20, *, guild_id: int) -> list[ShowcaseRecord]:
        """The server's nominations waiting for a moderator (results deleted since are left out), oldest first."""
        query = _entries().where(ShowcaseEntry.guild_id == guild_id, ShowcaseEntry.state == ShowcaseState.PENDING,
                                 Job.deleted_at.is_(None))
        return await self._list(query.order_by(ShowcaseEntry.id).limit(limit))

    async def decide(
        self, job_id: int, *, guild_id: int, approve: bool, moderator_id: int, reason: str | None = None,
        now: datetime | None = None,
    ) -> ShowcaseRecord:
        """pending → approved or rejected by a moderator of the entry's server; ShowcaseError when the server has no
        such nomination (another server's is not even named), its job was deleted (decided before or not: it shows
        nowhere), or it was already decided (by another moderator at the same moment, too: only a pending entry is
        changed, so one of two decisions wins and the other is told)."""
        now = now or self._clock()
        target = ShowcaseState.APPROVED if approve else ShowcaseState.REJECTED
        mine = (ShowcaseEntry.job_id == job_id, ShowcaseEntry.guild_id == guild_id)

        async def work(session: AsyncSession) -> ShowcaseRecord:
            entry = (await session.scalars(select(ShowcaseEntry).where(*mine))).first()
            if entry is None:
                raise ShowcaseError("not_nominated", f"Job #{job_id} has not been nominated for the showcase.")
            job = await session.get(Job, job_id)
            if job is not None and job.deleted_at is not None:  # whatever was decided before: it shows nowhere now
                raise ShowcaseError("deleted", f"Job #{job_id} was deleted; there is nothing to show.")
            if entry.state != ShowcaseState.PENDING:
                raise ShowcaseError("decided", f"Job #{job_id} was already {entry.state}.")
            pending = (ShowcaseEntry.id == entry.id, ShowcaseEntry.state == ShowcaseState.PENDING)
            taken = (await session.execute(update(ShowcaseEntry).where(*pending).values(
                state=target, decided_by=moderator_id, decided_at=now, reason=reason))).rowcount  # type: ignore[attr-defined]
            if not taken:  # another moderator's decision came first, since this one read the entry
                state = await session.scalar(select(ShowcaseEntry.state).where(ShowcaseEntry.id == entry.id))
                raise ShowcaseError("decided", f"Job #{job_id} was already {state}.")
            return await self._require(session, job_id)

        record = await self._run(work)
        log.info("showcase entry %d (job %d, server %d) %s by moderator %d", record.id, job_id, guild_id, target,
                 moderator_id)
        return record

    async def set_post(self, entry_id: int, channel_id: int | None, message_id: int | None) -> None:
        """Remember (or forget, with None) where the approved video was posted."""

        async def work(session: AsyncSession) -> None:
            entry = await session.get(ShowcaseEntry, entry_id)
            if entry is not None:
                entry.channel_id, entry.message_id = channel_id, message_id

        await self._run(work)

    async def forget_posts(self, channel_id: int, message_ids: Collection[int] | None = None) -> list[int]:
        """Forget the posts Discord says are gone: those of `message_ids` in the channel, or (None) every post in it,
        the channel being deleted; the jobs whose post was forgotten. Their entries stay as they were decided."""
        if message_ids is not None and not message_ids:
            return []
        gone = [ShowcaseEntry.channel_id == channel_id]
        if message_ids is not None:
            gone.append(ShowcaseEntry.message_id.in_(list(message_ids)))

        async def work(session: AsyncSession) -> list[int]:
            entries = (await session.scalars(select(ShowcaseEntry).where(*gone))).all()
            for entry in entries:
                entry.channel_id, entry.message_id = None, None
            return [entry.job_id for entry in entries]

        jobs = await self._run(work)
        if jobs:
            log.info("the showcase posts of jobs %s in channel %d are gone; forgotten", jobs, channel_id)
        return jobs

    async def posts(self) -> dict[int, list[int]]:
        """Every post on record, by channel: {channel: its posts' message ids, oldest first}."""
        query = (select(ShowcaseEntry.channel_id, ShowcaseEntry.message_id)
                 .where(ShowcaseEntry.channel_id.is_not(None), ShowcaseEntry.message_id.is_not(None))
                 .order_by(ShowcaseEntry.channel_id, ShowcaseEntry.message_id))

        async def work(session: AsyncSession) -> dict[int, list[int]]:
            posts: dict[int, list[int]] = {}
            for channel_id, message_id in (await session.execute(query)).all():
                posts.setdefault(channel_id, []).append(message_id)
            return posts

        return await self._run(work)

    # --- votes and the gallery --------------------------------------------------------------------------------

    async def toggle_vote(self, entry_id: int, user_id: int, *, may_add: bool = True,
                          now: datetime | None = None) -> tuple[bool, int]:
        """Add the member's ⭐, or take it back if they had voted; returns (voted now, the entry's count). Only an entry
        the gallery shows now takes votes (`_shown`): one hidden while its author is blocked keeps the votes it has,
        and takes none until it shows again. Without `may_add` (a blocked member) an earlier vote is still taken
        back, but a press that would add one changes nothing and raises ShowcaseError ("may_not_add"): the same
        DELETE that takes a vote back decides, so a double press cannot slip a vote in."""
        now = now or self._clock()

        async def work(session: AsyncSession) -> tuple[bool, int]:
            if await self._first(session, _entries().where(ShowcaseEntry.id == entry_id, *_shown(now))) is None:
                entry = await self._entry(session, ShowcaseEntry.id == entry_id)  # why not: the rare case asks again
                if entry is None or entry.state != ShowcaseState.APPROVED or entry.job_deleted:
                    raise ShowcaseError("not_shown", "This video is no longer in the showcase.")
                raise ShowcaseError("hidden", "This video is hidden from the showcase for now, so it takes no votes.")
            mine = (ShowcaseVote.entry_id == entry_id, ShowcaseVote.user_id == user_id)
            removed = (await session.execute(delete(ShowcaseVote).where(*mine))).rowcount  # type: ignore[attr-defined]
            if not removed and not may_add:
                raise ShowcaseError("may_not_add", "You may not vote on the showcase right now.")
            if not removed:
                try:
                    async with session.begin_nested():
                        session.add(ShowcaseVote(entry_id=entry_id, user_id=user_id, created_at=now))
                except IntegrityError:  # the same member's other click won the race: the vote stands
                    log.debug("user %d already voted for showcase entry %d", user_id, entry_id)
            count = select(func.count()).select_from(ShowcaseVote).where(ShowcaseVote.entry_id == entry_id)
            return not removed, (await session.execute(count)).scalar_one()

        voted, count = await self._run(work)
        log.info("user %d %s showcase entry %d (%d votes)", user_id, "voted for" if voted else "unvoted", entry_id,
                 count)
        return voted, count

    async def shown(self, job_id: int, *, now: datetime | None = None) -> ShowcaseRecord | None:
        """The job's entry if the gallery shows it now (see `_shown`), else None."""
        query = _entries().where(ShowcaseEntry.job_id == job_id, *_shown(self._now(now)))
        return await self._run(lambda session: self._first(session, query))

    async def approved_count(self, *, guild_id: int | None = None, now: datetime | None = None) -> int:
        """How many entries the gallery shows of a server (None: of every server together)."""
        query = (select(func.count()).select_from(ShowcaseEntry).join(Job)
                 .where(*_shown(self._now(now)), *_of(guild_id)))

        async def work(session: AsyncSession) -> int:
            return (await session.execute(query)).scalar_one()

        return await self._run(work)

    async def approved_page(self, page: int, per_page: int, *, guild_id: int | None = None,
                            now: datetime | None = None) -> list[ShowcaseRecord]:
        """One page (1-based) of the entries the gallery shows of a server (None: of every server), newest decision
        first."""
        if page < 1 or per_page < 1:
            raise ValueError(f"page and per_page start at 1, got page={page}, per_page={per_page}")
        order = (ShowcaseEntry.decided_at.desc(), ShowcaseEntry.id.desc())
        return await self._list(_entries().where(*_shown(self._now(now)), *_of(guild_id)).order_by(*order)
                                .limit(per_page).offset((page - 1) * per_page))

    async def approved_servers(self, *, now: datetime | None = None) -> list[tuple[int, int]]:
        """(server, videos the gallery shows) of every server with some, the latest approval first."""
        count, latest = func.count().label("n"), func.max(ShowcaseEntry.decided_at).label("latest")
        query = (select(ShowcaseEntry.guild_id, count).join(Job).where(*_shown(self._now(now)))
                 .group_by(ShowcaseEntry.guild_id).order_by(latest.desc(), ShowcaseEntry.guild_id))

        async def work(session: AsyncSession) -> list[tuple[int, int]]:
            return [(guild, n) for guild, n in (await session.execute(query)).all()]

        return await self._run(work)

    async def kept_job_ids(self) -> set[int]:
        """Jobs whose video the showcase still needs: nominated (waiting for a moderator) or approved."""
        query = select(ShowcaseEntry.job_id).where(ShowcaseEntry.state != ShowcaseState.REJECTED)

        async def work(session: AsyncSession) -> set[int]:
            return set((await session.execute(query)).scalars())

        return await self._run(work)

    # --- helpers ----------------------------------------------------------------------------------------------

    async def _list(self, query: Select[Any]) -> list[ShowcaseRecord]:
        async def work(session: AsyncSession) -> list[ShowcaseRecord]:
            return [_record(*row) for row in (await session.execute(query)).all()]

        return await self._run(work)

    @staticmethod
    async def _entry(session: AsyncSession, criterion: Any) -> ShowcaseRecord | None:
        return await ShowcaseRepository._first(session, _entries().where(criterion))

    @staticmethod
    async def _first(session: AsyncSession, query: Select[Any]) -> ShowcaseRecord | None:
        row = (await session.execute(query)).first()
        return None if row is None else _record(*row)

    async def _require(self, session: AsyncSession, job_id: int) -> ShowcaseRecord:
        record = await self._entry(session, ShowcaseEntry.job_id == job_id)
        assert record is not None, f"the showcase entry of job {job_id} vanished inside its transaction"
        return record


def _check_showable(job: Job | None, job_id: int) -> None:
    """Raise ShowcaseError unless the job has a finished, public, undeleted result."""
    if job is None:
        raise ShowcaseError("missing", f"There is no job #{job_id}.")
    if job.deleted_at is not None:
        raise ShowcaseError("deleted", f"Job #{job_id} was deleted.")
    if job.guild_id is None:
        raise ShowcaseError("no_server", f"Job #{job_id} was made in direct messages; only videos made in a server "
                                         "can go to that server's showcase.")
    if job.params.get("private"):
        raise ShowcaseError("private", f"Job #{job_id} is private; private videos never go to the showcase.")
    if job.state != JobState.DONE:
        raise ShowcaseError("not_done", f"Job #{job_id} has no finished video to show.")


def _shown(now: datetime) -> tuple[ColumnElement[bool], ...]:
    """What the gallery shows at `now`: approved entries of undeleted jobs whose author has no block holding at `now`
    in the entry's server or in every server (GLOBAL). A block that ran out hides nothing, as in
    ModerationRepository.active_block."""
    blocked = exists().where(Block.user_id == Job.user_id,
                             or_(Block.guild_id == ShowcaseEntry.guild_id, Block.guild_id == GLOBAL),
                             or_(Block.until.is_(None), Block.until > now))
    return ShowcaseEntry.state == ShowcaseState.APPROVED, Job.deleted_at.is_(None), ~blocked


def _of(guild_id: int | None) -> list[Any]:
    """Entries of one server; every server's for None."""
    return [] if guild_id is None else [ShowcaseEntry.guild_id == guild_id]


def _entries() -> Select[Any]:
    """Entries with their job and ⭐ count."""
    votes = (select(func.count(ShowcaseVote.id)).where(ShowcaseVote.entry_id == ShowcaseEntry.id)
             .correlate(ShowcaseEntry).scalar_subquery())
    return select(ShowcaseEntry, Job, votes).join(Job, Job.id == ShowcaseEntry.job_id)


def _record(entry: ShowcaseEntry, job: Job, votes: int) -> ShowcaseRecord:
    """Copy an entry, its job's prompt, author and video size, and its vote count into a frozen record."""
    return ShowcaseRecord(
        id=entry.id, job_id=entry.job_id, state=ShowcaseState(entry.state), nominated_by=entry.nominated_by,
        nominated_at=entry.nominated_at, decided_by=entry.decided_by, decided_at=entry.decided_at,
        reason=entry.reason, channel_id=entry.channel_id, message_id=entry.message_id, votes=int(votes),
        prompt=job.prompt, author_id=job.user_id, author_name=job.user_name, job_deleted=job.deleted_at is not None,
        guild_id=entry.guild_id, width=_pixels(job.params.get("width")), height=_pixels(job.params.get("height")),
    )


def _pixels(value: Any) -> int | None:
    """A size from a job's params, None when it was not recorded."""
    return int(value) if isinstance(value, int | float) and value > 0 else None
