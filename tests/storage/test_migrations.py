"""The shipped Alembic migrations build the schema the models describe, with SQLite in WAL mode."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

import storage.moderation_models  # noqa: F401  (the moderation tables in Base.metadata, as in migrations/env.py)
from storage import Repository, SchemaTooNew, create_engine, migrate
from storage.db import WAL_SIZE_LIMIT_BYTES, alembic_config
from storage.models import Base

HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()  # the newest shipped migration


async def test_migrate_creates_the_tables_and_indexes(engine: AsyncEngine) -> None:
    def describe(connection: Connection) -> tuple[set[str], set[str], set[str]]:
        inspector = inspect(connection)
        return (set(inspector.get_table_names()), {index["name"] for index in inspector.get_indexes("jobs")},
                {index["name"] for index in inspector.get_indexes("showcase_entries")})

    async with engine.connect() as connection:
        tables, indexes, showcase = await connection.run_sync(describe)
        version = (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
    assert {"jobs", "denylist_entries", "alembic_version"} <= tables
    assert indexes == {"ix_jobs_state_id", "ix_jobs_user_id_created_at", "ix_jobs_guild_id_created_at",
                       "ix_jobs_delivery", "ix_jobs_result_message_id", "ix_jobs_created_at",
                       "ix_jobs_state_created_at_refusal_reason", "ix_jobs_state_guild_id_created_at",
                       "ix_jobs_state_finished_at_id_gpu_s"}
    assert {"ix_showcase_entries_state_id", "ix_showcase_entries_guild_id_state_id",
            "ix_showcase_entries_channel_id_message_id"} <= showcase  # PostgreSQL lists the job's unique one too
    assert version == HEAD


@pytest.mark.backends("sqlite")
async def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        journal = (await connection.execute(text("PRAGMA journal_mode"))).scalar_one()
        timeout = (await connection.execute(text("PRAGMA busy_timeout"))).scalar_one()
        foreign_keys = (await connection.execute(text("PRAGMA foreign_keys"))).scalar_one()
    assert (journal, timeout, foreign_keys) == ("wal", 5000, 1)


@pytest.mark.backends("sqlite")
async def test_a_wal_grown_under_a_long_read_is_cut_back_once_the_read_ends(engine: AsyncEngine, tmp_path) -> None:
    wal = tmp_path / "videobot.db-wal"
    repo = Repository(engine)
    prompt = "a lighthouse in a storm " * 2_000  # ≈ 48 KB a row: the WAL grows fast, a few pages a commit

    async def requests(count: int) -> None:
        for user_id in range(count):
            await repo.create_job(user_id=user_id, user_name="u", channel_id=1, prompt=prompt, params={},
                                  refusal_reason="invalid")

    async with engine.connect() as reader:  # a long read (a /videomod stats over a big jobs log) holds its snapshot
        await reader.execute(text("BEGIN"))
        await reader.execute(text("SELECT count(*) FROM jobs"))
        await requests(WAL_SIZE_LIMIT_BYTES // len(prompt) + 100)  # no checkpoint can pass the reader meanwhile
        grown = wal.stat().st_size
    await requests(3)  # a checkpoint now copies it all back; the next commit starts the WAL over

    assert grown > WAL_SIZE_LIMIT_BYTES
    assert wal.stat().st_size <= WAL_SIZE_LIMIT_BYTES  # not left at its largest for as long as the bot runs


async def test_migrating_twice_changes_nothing_and_says_nothing(engine: AsyncEngine, caplog) -> None:
    caplog.set_level("INFO", logger="storage.db")
    await migrate(engine)  # each start migrates: one that finds nothing to do logs no "upgraded"
    async with engine.connect() as connection:
        versions = (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalars().all()
    assert versions == [HEAD]
    assert [r.getMessage() for r in caplog.records if r.name == "storage.db" and r.levelname == "INFO"] == []


async def test_a_migration_says_from_which_revision_to_which_on_one_line(tmp_path, caplog) -> None:
    caplog.set_level("INFO")
    await migrate(f"sqlite+aiosqlite:///{tmp_path / 'new.db'}")
    said = [r.getMessage() for r in caplog.records if r.levelname == "INFO"]
    assert f"database schema upgraded from revision none to {HEAD}" in said
    assert all("\n" not in line for line in said), said  # Alembic's "Running upgrade" lines too


def test_each_migrations_summary_is_one_line() -> None:
    """Alembic's "Running upgrade A -> B, <summary>" takes the docstring's first paragraph: one line of a log."""
    for revision in ScriptDirectory.from_config(alembic_config()).walk_revisions():
        assert "\n" not in revision.doc and len(revision.doc) <= 120, (revision.revision, revision.doc)


async def test_migrate_accepts_a_url_and_plain_sqlite_driver_name(tmp_path) -> None:
    path = tmp_path / "plain.db"
    await migrate(f"sqlite:///{path}")
    engine = create_engine(f"sqlite:///{path}")
    try:
        async with engine.connect() as connection:
            count = (await connection.execute(text("SELECT count(*) FROM jobs"))).scalar_one()
    finally:
        await engine.dispose()
    assert count == 0


async def test_models_and_migrations_agree(engine: AsyncEngine) -> None:
    def differences(connection: Connection) -> list:
        return compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata)

    async with engine.connect() as connection:
        diff = await connection.run_sync(differences)
    assert diff == []


async def test_the_migrations_form_a_single_line_through_the_moderation_tables() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert len(script.get_heads()) == 1
    assert {"0001", "0002"} <= {revision.revision for revision in script.walk_revisions()}


@pytest.mark.backends("sqlite")
async def test_a_migration_that_fails_half_way_leaves_the_database_as_it_was(tmp_path) -> None:
    """Every statement of the upgrade in one transaction: a failure after tables were already changed (here at
    migration 0004's first copy of a table, after its first ALTERs) keeps the 0003 schema and its version, and the
    next start migrates from there (without the transaction: "duplicate column name" at every start)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    await migrate(url, "0003")
    engine = create_engine(url)

    def crash(conn, cursor, statement, *args) -> None:
        if statement.lstrip().startswith("CREATE TABLE _alembic_tmp_"):
            raise RuntimeError("the process died here")

    event.listen(engine.sync_engine, "before_cursor_execute", crash)
    try:
        with pytest.raises(RuntimeError, match="died here"):
            await migrate(engine)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", crash)

    def columns(connection: Connection) -> dict[str, set[str]]:
        inspector = inspect(connection)
        return {name: {c["name"] for c in inspector.get_columns(name)} for name in inspector.get_table_names()}

    async with engine.connect() as connection:
        version = (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
        before = await connection.run_sync(columns)
    assert version == "0003"
    assert not any(name.startswith("_alembic_tmp_") for name in before)
    assert all("guild_id" not in before[name] for name in ("quota_overrides", "blocks", "channel_rules"))
    await migrate(engine)  # the next start
    async with engine.connect() as connection:
        assert (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalar_one() == HEAD
    await engine.dispose()


@pytest.mark.backends("sqlite")
async def test_a_database_a_newer_version_migrated_is_named_not_migrated(tmp_path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    await migrate(url)
    engine = create_engine(url)
    async with engine.begin() as connection:
        await connection.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    with pytest.raises(SchemaTooNew) as raised:
        await migrate(engine)
    assert (raised.value.revision, raised.value.newest) == ("0099", HEAD)
    assert str(raised.value) == f"the database's schema is at revision 0099, newer than this code's newest, {HEAD}"
    async with engine.connect() as connection:  # untouched
        assert (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalar_one() == "0099"
    await engine.dispose()


async def test_a_downgrade_below_deliveries_names_the_videos_whose_post_is_still_pending(engine, caplog):
    from storage import Repository
    from tests.storage.test_tenancy_migration import downgrade_to

    repo = Repository(engine)
    jobs = [await repo.create_job(user_id=1, user_name="u", channel_id=2, prompt="a cat", params={}) for _ in range(2)]
    for job in jobs:
        await repo.mark_running(job.id)
    await repo.mark_done(jobs[0].id, seed=1, gpu_s=1.0, output_bytes=1)  # its post cut short: pending
    await repo.mark_done(jobs[1].id, seed=1, gpu_s=1.0, output_bytes=1, result_message_id=9)
    async with engine.begin() as connection:
        await connection.run_sync(downgrade_to, "0004")

    assert ("the older release will not post the finished videos whose post a stop cut short (1: jobs "
            f"{jobs[0].id})") in caplog.text
