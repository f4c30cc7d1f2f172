"""The showcase repository when two moderators decide one nomination at the same moment."""

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Result, event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.util import await_only

from storage import ShowcaseError
from storage.models import ShowcaseEntry
from storage.records import ShowcaseState
from storage.showcase import ShowcaseRepository
from tests.clocks import Clock
from tests.storage.test_showcase_repository import SERVER, finished


class Paused:
    """Once armed, holds the first transaction that reads a showcase entry right after its read, until `resume` is
    set."""

    def __init__(self) -> None:
        self.armed, self.read, self.resume = False, asyncio.Event(), asyncio.Event()

    def __call__(self, state: ORMExecuteState) -> Result[Any] | None:
        entities = [column.get("entity") for column in getattr(state.statement, "column_descriptions", [])]
        if not self.armed or self.read.is_set() or not state.is_select or ShowcaseEntry not in entities:
            return None
        rows = state.invoke_statement().freeze()  # read now: what the transaction has seen
        self.read.set()
        await_only(self.resume.wait())  # inside the session's greenlet: the event loop runs the other decision
        return rows()


@pytest.fixture
def showcase(engine: AsyncEngine, clock: Clock) -> ShowcaseRepository:
    return ShowcaseRepository(engine, clock=clock)


@pytest.fixture
def paused() -> Iterator[Paused]:
    hook = Paused()
    event.listen(Session, "do_orm_execute", hook)
    yield hook
    event.remove(Session, "do_orm_execute", hook)


async def test_of_two_decisions_at_once_the_first_to_write_wins_and_the_other_is_told(repo, make_job, showcase,
                                                                                     paused):
    """Both were told they had decided, and the later write stood: an approved, posted video could end rejected."""
    job = await finished(repo, make_job)
    await showcase.nominate(job.id, user_id=5)
    paused.armed = True
    approving = asyncio.create_task(showcase.decide(job.id, guild_id=SERVER, approve=True, moderator_id=10))
    await paused.read.wait()  # the approval has read the nomination, pending
    rejected = await showcase.decide(job.id, guild_id=SERVER, approve=False, moderator_id=11, reason="dull")
    paused.resume.set()
    with pytest.raises(ShowcaseError) as refused:
        await approving
    entry = await showcase.get(job.id)

    assert rejected.state == ShowcaseState.REJECTED
    assert (refused.value.code, refused.value.message) == ("decided", f"Job #{job.id} was already rejected.")
    assert (entry.state, entry.decided_by, entry.reason) == (ShowcaseState.REJECTED, 11, "dull")
