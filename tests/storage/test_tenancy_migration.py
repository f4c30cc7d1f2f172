"""Migration 0004 on a database the previous schema (0003) made: every row is kept and gets its server — the home
server (DISCORD_GUILD_ID) when there is one, else the one server of the jobs it concerns, else GLOBAL."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.ext.asyncio import AsyncEngine

from storage import GLOBAL, create_engine, migrate
from storage.db import alembic_config

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
A, B, HOME = 1001, 1002, 5555  # two servers, and the one DISCORD_GUILD_ID names
ONE_SERVER, TWO_SERVERS, DM_ONLY, NO_JOBS = 11, 12, 13, 14  # users
CHANNEL_A, CHANNEL_B, QUIET_CHANNEL = 101, 201, 999
STAMP = {"set_by": 7, "set_at": AT}


def table(name: str, *columns: str) -> sa.TableClause:
    """A table of the 0003 schema, its datetime and JSON columns typed so that every driver takes the values."""
    typed = {"created_at": sa.DateTime(timezone=True), "set_at": sa.DateTime(timezone=True),
             "blocked_at": sa.DateTime(timezone=True), "at": sa.DateTime(timezone=True),
             "nominated_at": sa.DateTime(timezone=True), "until": sa.DateTime(timezone=True),
             "counted_from": sa.DateTime(timezone=True), "params": sa.JSON(), "details": sa.JSON(),
             "value": sa.JSON()}
    return sa.table(name, *(sa.column(c, typed.get(c)) for c in columns))


ROWS: dict[str, list[dict[str, Any]]] = {
    "jobs": [
        {"id": 1, "user_id": ONE_SERVER, "guild_id": A, "channel_id": CHANNEL_A},
        {"id": 2, "user_id": ONE_SERVER, "guild_id": None, "channel_id": 300},  # a DM besides: still one server
        {"id": 3, "user_id": TWO_SERVERS, "guild_id": A, "channel_id": CHANNEL_A},
        {"id": 4, "user_id": TWO_SERVERS, "guild_id": B, "channel_id": CHANNEL_B},
        {"id": 5, "user_id": DM_ONLY, "guild_id": None, "channel_id": 301},
    ],
    "quota_overrides": [{"user_id": user, "max_videos": 5, "counted_from": None, **STAMP}
                        for user in (ONE_SERVER, TWO_SERVERS, DM_ONLY, NO_JOBS)],
    "blocks": [{"user_id": user, "reason": "spam", "until": None, "blocked_by": 7, "blocked_at": AT}
               for user in (ONE_SERVER, TWO_SERVERS)],
    "channel_rules": [{"channel_id": CHANNEL_B, "allowed": True, **STAMP},
                      {"channel_id": QUIET_CHANNEL, "allowed": False, **STAMP}],
    "quota_role_defaults": [{"role_id": 77, "max_videos": 3, **STAMP}],
    "moderation_settings": [{"key": "quota_default", "value": 4, **STAMP}],
    "denylist_entries": [{"pattern": "nude", "category": "sexual", "kind": "deny", "added_by": None, "created_at": AT},
                         {"pattern": "kittens", "category": "violence", "kind": "deny", "added_by": 7,
                          "created_at": AT}],
    "audit_log": [{"actor_id": 7, "action": "block", "target": f"user:{ONE_SERVER}", "details": {}, "at": AT,
                   "allowed": True},
                  {"actor_id": 7, "action": "result.delete", "target": "job:4", "details": {}, "at": AT,
                   "allowed": True},
                  {"actor_id": 7, "action": "channel.allow", "target": f"channel:{CHANNEL_B}", "details": {},
                   "at": AT, "allowed": True},
                  {"actor_id": 7, "action": "quota.default", "target": "server", "details": {"limit": 4}, "at": AT,
                   "allowed": True}],
    "showcase_entries": [{"id": 1, "job_id": 1, "nominated_by": 8, "nominated_at": AT, "state": "approved"},
                         {"id": 2, "job_id": 5, "nominated_by": 8, "nominated_at": AT, "state": "pending"}],
    "showcase_votes": [{"entry_id": 1, "user_id": 21, "created_at": AT}, {"entry_id": 1, "user_id": 22,
                                                                          "created_at": AT}],
}
JOB_DEFAULTS = {"user_name": "someone", "prompt": "a calm lake", "params": {"steps": 3}, "state": "done",
                "created_at": AT}
KEYS = {"quota_overrides": "user_id", "blocks": "user_id", "channel_rules": "channel_id",
        "quota_role_defaults": "role_id", "moderation_settings": "key", "denylist_entries": "pattern",
        "audit_log": "target", "showcase_entries": "job_id"}


@pytest.fixture
async def old_database(db_url: str) -> AsyncIterator[AsyncEngine]:
    """A database at revision 0003 holding a row in every moderation table."""
    engine = create_engine(db_url)
    await migrate(engine, "0003")
    async with engine.begin() as connection:
        for name, rows in ROWS.items():
            rows = [{**JOB_DEFAULTS, **row} for row in rows] if name == "jobs" else rows
            await connection.execute(sa.insert(table(name, *rows[0])), rows)
    yield engine
    await engine.dispose()


async def servers(engine: AsyncEngine) -> dict[str, dict[Any, int]]:
    """table → {its former key: the server the row now belongs to}."""
    found = {}
    async with engine.connect() as connection:
        for name, key in KEYS.items():
            rows = (await connection.execute(sa.select(table(name, key, "guild_id")))).all()
            found[name] = {row[0]: row[1] for row in rows}
    return found


async def count(engine: AsyncEngine, name: str) -> int:
    async with engine.connect() as connection:
        return (await connection.execute(sa.select(sa.func.count()).select_from(sa.table(name)))).scalar_one()


async def test_without_a_home_server_rows_go_to_the_one_server_of_their_jobs_else_stay_global(old_database):
    await migrate(old_database)

    assert await servers(old_database) == {
        "quota_overrides": {ONE_SERVER: A, TWO_SERVERS: GLOBAL, DM_ONLY: GLOBAL, NO_JOBS: GLOBAL},
        "blocks": {ONE_SERVER: A, TWO_SERVERS: GLOBAL},
        "channel_rules": {CHANNEL_B: B, QUIET_CHANNEL: GLOBAL},
        "quota_role_defaults": {77: GLOBAL},
        "moderation_settings": {"quota_default": GLOBAL},
        "denylist_entries": {"nude": GLOBAL, "kittens": GLOBAL},
        "audit_log": {f"user:{ONE_SERVER}": A, "job:4": B, f"channel:{CHANNEL_B}": B, "server": GLOBAL},
        "showcase_entries": {1: A, 5: GLOBAL},
    }
    assert {name: await count(old_database, name) for name in ROWS} == {name: len(rows) for name, rows in ROWS.items()}


async def test_with_a_home_server_every_row_goes_there_except_the_shipped_denylist(old_database):
    await migrate(old_database, home_guild_id=HOME)

    found = await servers(old_database)
    assert found.pop("denylist_entries") == {"nude": GLOBAL, "kittens": HOME}
    assert all(set(rows.values()) == {HOME} for rows in found.values()), found
    assert {name: await count(old_database, name) for name in ROWS} == {name: len(rows) for name, rows in ROWS.items()}


async def test_after_the_migration_two_servers_may_hold_a_row_for_the_same_user(old_database):
    await migrate(old_database)
    overrides = table("quota_overrides", "guild_id", "user_id", "max_videos", "counted_from", "set_by", "set_at")
    async with old_database.begin() as connection:
        await connection.execute(sa.insert(overrides), [{"guild_id": B, "user_id": ONE_SERVER, "max_videos": 1,
                                                         "counted_from": None, **STAMP}])
    assert await count(old_database, "quota_overrides") == len(ROWS["quota_overrides"]) + 1
    assert await count(old_database, "showcase_votes") == 2  # SQLite's copy of showcase_entries kept its votes


async def test_the_downgrade_keeps_one_row_per_former_key_the_global_one_first(old_database):
    await migrate(old_database)
    overrides = table("quota_overrides", "guild_id", "user_id", "max_videos", "counted_from", "set_by", "set_at")
    async with old_database.begin() as connection:
        await connection.execute(sa.insert(overrides), [{"guild_id": B, "user_id": TWO_SERVERS, "max_videos": 1,
                                                         "counted_from": None, **STAMP}])
        await connection.run_sync(downgrade_to, "0003")
        kept = (await connection.execute(sa.select(table("quota_overrides", "user_id", "max_videos")))).all()
    assert sorted(kept) == sorted((user, 5) for user in (ONE_SERVER, TWO_SERVERS, DM_ONLY, NO_JOBS))
    assert await count(old_database, "showcase_votes") == 2


def downgrade_to(connection: sa.engine.Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.downgrade(config, revision)
