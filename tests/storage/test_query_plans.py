"""The reads a busy bot makes often find their rows through an index, not by reading a whole table (SQLite's
`EXPLAIN QUERY PLAN` of the very statements the repositories run), nor by sorting a whole log for a few rows, and
revisions 0007 and 0008 add the indexes they need."""

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from storage import GLOBAL, ModerationRepository, Repository, ShowcaseRepository, create_engine, migrate
from tests.storage.conftest import START
from tests.storage.test_tenancy_migration import downgrade_to

REVISION_0008 = {"ix_jobs_state_created_at_refusal_reason", "ix_jobs_state_guild_id_created_at",
                 "ix_jobs_state_finished_at_id_gpu_s"}


async def plans(engine: AsyncEngine, read: Callable[[], Awaitable[Any]]) -> list[str]:
    """The query plan of each SELECT on `jobs` or `showcase_entries` that `read` runs, one text per statement."""
    statements: list[tuple[str, Any]] = []

    def seen(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        await read()
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", seen)
    found = []
    async with engine.connect() as connection:
        for statement, parameters in statements:
            rows = await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            found.append(" / ".join(row[-1] for row in rows))
    assert found, "the read ran no SELECT"
    return found


@pytest.mark.backends("sqlite")
async def test_every_servers_stats_over_a_window_read_the_jobs_by_their_creation_time(engine: AsyncEngine) -> None:
    repo = ModerationRepository(engine)
    since = START - timedelta(days=1)

    stats = await plans(engine, lambda: repo.usage_stats(since, guild_id=GLOBAL))
    servers = await plans(engine, lambda: repo.server_usage(since))

    # Each number reads the window's rows, found by their creation time, never the whole log ("SCAN jobs"); the
    # refusals are the window's refused rows, found by their state and creation time (through ix_jobs_state_id it
    # read every refused row ever logged, then kept the window's).
    by_time = [plan for plan in stats + servers if "ix_jobs_created_at (created_at>? AND created_at<?)" in plan]
    others = [plan.split(" / ")[0] for plan in stats + servers if plan not in by_time]
    assert others == ["SEARCH jobs USING COVERING INDEX ix_jobs_state_created_at_refusal_reason "
                      "(state=? AND created_at>? AND created_at<?)"], others
    assert len(by_time) == 4 and all(plan.startswith("SEARCH jobs USING INDEX") for plan in by_time), by_time


@pytest.mark.backends("sqlite")
async def test_one_servers_stats_over_a_window_read_that_servers_jobs_of_the_window(engine: AsyncEngine) -> None:
    repo = ModerationRepository(engine)

    found = await plans(engine, lambda: repo.usage_stats(START - timedelta(days=1), guild_id=800))

    # the refusals: the server's refused rows of the window, not every server's refusals of the window
    by_time = "SEARCH jobs USING INDEX ix_jobs_guild_id_created_at (guild_id=? AND created_at>? AND created_at<?)"
    refusals = ("SEARCH jobs USING INDEX ix_jobs_state_guild_id_created_at "
                "(state=? AND guild_id=? AND created_at>? AND created_at<?)")
    assert [plan.split(" / ")[0] for plan in found] == [by_time, refusals, by_time, by_time], found


@pytest.fixture(params=["migrating", "fresh", "reordered"])
async def reader(request: pytest.FixtureRequest, engine: AsyncEngine, db_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine whose connection plans the reads: the one that ran the migrations (SQLite keeps the schema it built),
    a fresh one (it reads the schema from the file), or a fresh one over a schema that lists the jobs' indexes in the
    reverse order (as a table rebuilt by a migration may): without statistics SQLite takes the first listed of equally
    good indexes, so a plan that holds for only one of them is luck."""
    if request.param == "migrating":
        yield engine
        return
    if request.param == "reordered":
        async with engine.begin() as connection:
            found = await connection.exec_driver_sql(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'jobs' AND sql IS NOT NULL "
                "ORDER BY rowid")
            for name, sql in reversed(found.all()):
                await connection.exec_driver_sql(f'DROP INDEX "{name}"')
                await connection.exec_driver_sql(sql)
    fresh = create_engine(db_url)
    yield fresh
    await fresh.dispose()


@pytest.mark.backends("sqlite")
@pytest.mark.parametrize("guild_id", [800, None], ids=["server", "direct messages"])
async def test_one_servers_stats_of_all_time_count_only_that_servers_refusals_on_every_connection(
        reader: AsyncEngine, guild_id: int | None) -> None:
    repo = ModerationRepository(reader)

    found = await plans(reader, lambda: repo.usage_stats(None, guild_id=guild_id))

    # `period:all` in one server: its refused rows, found by state and server. Through a state index alone it read
    # every server's refusals ever logged; through the server's index, all its rows. Without statistics SQLite saw
    # those two as equally good and took the first in its list of the table's indexes.
    server = "SEARCH jobs USING INDEX ix_jobs_guild_id_created_at (guild_id=?)"
    refusals = "SEARCH jobs USING INDEX ix_jobs_state_guild_id_created_at (state=? AND guild_id=?)"
    assert [plan.split(" / ")[0] for plan in found] == [server, refusals, server, server], found


@pytest.mark.backends("sqlite")
async def test_every_servers_stats_of_all_time_count_the_refusals_from_their_index_alone_on_every_connection(
        reader: AsyncEngine) -> None:
    repo = ModerationRepository(reader)

    states, refusals, *_ = await plans(reader, lambda: repo.usage_stats(None, guild_id=GLOBAL))

    # every refused row ever logged, and only those, without reading the table (two other state indexes serve
    # `state=?` as well, and SQLite took the first listed); the other numbers read the whole log, as they must
    assert refusals.split(" / ")[0] == (
        "SEARCH jobs USING COVERING INDEX ix_jobs_state_created_at_refusal_reason (state=?)"), refusals
    assert states.startswith("SCAN jobs USING COVERING INDEX"), states


@pytest.mark.backends("sqlite")
async def test_the_etas_last_finished_videos_are_read_newest_first_from_their_index_alone_on_every_connection(
        reader: AsyncEngine) -> None:
    repo = Repository(reader)

    found = await plans(reader, lambda: repo.recent_render_seconds(20))

    # the newest finished videos in the index's order, their seconds from it, stopping at the limit: through a state
    # index it read every finished video ever logged and sorted them ("USE TEMP B-TREE FOR ORDER BY") at each start
    assert found == ["SEARCH jobs USING COVERING INDEX ix_jobs_state_finished_at_id_gpu_s (state=?)"], found


@pytest.mark.backends("sqlite")
async def test_a_deleted_message_is_looked_up_among_the_showcase_posts_by_channel_and_message(
        engine: AsyncEngine) -> None:
    showcase = ShowcaseRepository(engine)

    found = await plans(engine, lambda: showcase.forget_posts(800, [1_234_567_890_123_456_789]))

    # without the index: "SCAN showcase_entries", at every message deleted anywhere the bot reads
    assert ["ix_showcase_entries_channel_id_message_id" in plan for plan in found] == [True], found


async def test_the_indexes_go_with_a_downgrade_below_0007_and_come_back_with_the_upgrade(engine: AsyncEngine) -> None:
    def indexes(connection: Connection) -> set[str]:
        inspector = inspect(connection)
        return {index["name"] for table in ("jobs", "showcase_entries") for index in inspector.get_indexes(table)}

    new = {"ix_jobs_created_at", "ix_showcase_entries_channel_id_message_id"}
    async with engine.begin() as connection:
        await connection.run_sync(downgrade_to, "0006")
        assert not new & await connection.run_sync(indexes)
    await migrate(engine)
    async with engine.connect() as connection:
        assert new <= await connection.run_sync(indexes)


async def test_revision_0008s_indexes_go_with_a_downgrade_below_it_and_come_back_with_the_upgrade(
        engine: AsyncEngine) -> None:
    def indexes(connection: Connection) -> set[str]:
        return {index["name"] for index in inspect(connection).get_indexes("jobs")}

    async with engine.begin() as connection:
        await connection.run_sync(downgrade_to, "0007")
        left = await connection.run_sync(indexes)
    assert not REVISION_0008 & left
    assert {"ix_jobs_created_at", "ix_jobs_state_id"} <= left  # 0007's and older ones stay
    await migrate(engine)
    async with engine.connect() as connection:
        assert await connection.run_sync(indexes) == left | REVISION_0008
