"""Tenancy: every moderation record belongs to the server it was made in, or to every server (GLOBAL, 0).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-08

Adds `guild_id` to quota_overrides, quota_role_defaults, moderation_settings, blocks and channel_rules (each now keyed
by server first), denylist_entries (a pattern is unique per server), audit_log and showcase_entries, and gives every
existing row a server, in this order:

1. the server in DISCORD_GUILD_ID, when the bot passes one (`storage.migrate(..., home_guild_id=N)`; by hand,
   `python -m storage migrate`, which reads DISCORD_GUILD_ID too, or `--home-guild-id N`; README "Operate"): with it
   set the commands existed in that server only;
2. otherwise the server of the jobs the row concerns, when they were all made in one server: a quota override or a
   block → the user's jobs; a channel rule → the jobs made in that channel; a showcase entry → its job; an audit row
   → the jobs of its target (`job:N`, `channel:N`, `user:N`);
3. otherwise GLOBAL (0), kept as the operator's global settings, which hold in every server as before: role
   defaults and the default quota (no job ties them to a server), rows of users who used the bot in several servers,
   moderators' denylist additions (the shared list).
The shipped denylist (added_by NULL) always stays GLOBAL. No row is dropped or duplicated. The downgrade keeps one
row per former key (the GLOBAL one, else the lowest server id) and drops the column.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from alembic import context, op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

GLOBAL = 0
KEYED = {  # table -> the column that was its primary key
    "quota_overrides": "user_id",
    "quota_role_defaults": "role_id",
    "moderation_settings": "key",
    "blocks": "user_id",
    "channel_rules": "channel_id",
}
SCOPED = (*KEYED, "denylist_entries", "audit_log", "showcase_entries")
JOBS = sa.table("jobs", sa.column("id"), sa.column("user_id"), sa.column("channel_id"), sa.column("guild_id"))
VOTES = sa.table("showcase_votes", sa.column("id"), sa.column("entry_id"), sa.column("user_id"),
                 sa.column("created_at"))


def home_guild_id() -> int | None:
    """DISCORD_GUILD_ID as the bot or `python -m storage` passed it in (or Alembic's `-x home_guild_id=N`), else
    None."""
    value = context.config.attributes.get("home_guild_id")
    if value is None:
        value = context.get_x_argument(as_dictionary=True).get("home_guild_id")
    return None if value in (None, "") else int(value)


def upgrade() -> None:
    """Add the columns, give every row its server, then key the tables by server."""
    for name in SCOPED:
        with op.batch_alter_table(name) as batch:
            batch.add_column(sa.Column("guild_id", sa.BigInteger(), nullable=True))
    assign_servers(op.get_bind(), home_guild_id())
    for name, key in KEYED.items():
        with op.batch_alter_table(name) as batch:
            batch.alter_column("guild_id", existing_type=sa.BigInteger(), nullable=False)
            batch.drop_constraint(f"pk_{name}", type_="primary")
            batch.create_primary_key(f"pk_{name}", ["guild_id", key])
    with op.batch_alter_table("denylist_entries") as batch:
        batch.alter_column("guild_id", existing_type=sa.BigInteger(), nullable=False)
        batch.drop_constraint("uq_denylist_entries_pattern_kind", type_="unique")
        batch.create_unique_constraint("uq_denylist_entries_guild_id_pattern_kind", ["guild_id", "pattern", "kind"])
    with op.batch_alter_table("audit_log") as batch:
        batch.alter_column("guild_id", existing_type=sa.BigInteger(), nullable=False)
        batch.create_index("ix_audit_log_guild_id_id", ["guild_id", "id"])
    with keeping_votes(), op.batch_alter_table("showcase_entries") as batch:
        batch.alter_column("guild_id", existing_type=sa.BigInteger(), nullable=False)
        batch.create_index("ix_showcase_entries_guild_id_state_id", ["guild_id", "state", "id"])


def assign_servers(bind: sa.engine.Connection, home: int | None) -> None:
    """Set each row's guild_id: the home server, else the one server of its jobs, else GLOBAL (see above)."""
    if home is not None:
        for name in SCOPED:
            table = sa.table(name, sa.column("guild_id"), sa.column("added_by"))  # added_by: the denylist's only
            update = sa.update(table).values(guild_id=home)
            if name == "denylist_entries":
                update = update.where(table.c.added_by.is_not(None))  # the shipped list stays shared
            bind.execute(update)
    else:
        by_user, by_channel = only_server(bind, JOBS.c.user_id), only_server(bind, JOBS.c.channel_id)
        by_job = dict(bind.execute(sa.select(JOBS.c.id, JOBS.c.guild_id).where(JOBS.c.guild_id.is_not(None))).all())
        for name, found in (("quota_overrides", by_user), ("blocks", by_user), ("channel_rules", by_channel)):
            set_servers(bind, name, KEYED[name], found)
        entries = sa.table("showcase_entries", sa.column("job_id"))
        set_servers(bind, "showcase_entries", "job_id", {job: by_job[job] for job in
                                                          bind.execute(sa.select(entries.c.job_id)).scalars()
                                                          if job in by_job})
        audit = sa.table("audit_log", sa.column("id"), sa.column("target"))
        targets = {"job": by_job, "channel": by_channel, "user": by_user}
        set_servers(bind, "audit_log", "id", {row.id: guild for row in bind.execute(sa.select(audit))
                                              if (guild := target_server(row.target, targets)) is not None})
    for name in SCOPED:
        table = sa.table(name, sa.column("guild_id"))
        bind.execute(sa.update(table).where(table.c.guild_id.is_(None)).values(guild_id=GLOBAL))


def only_server(bind: sa.engine.Connection, column: sa.ColumnClause[Any]) -> dict[Any, int]:
    """key → server, for each key (a user, a channel) whose jobs in servers were all made in one server."""
    servers = sa.func.count(sa.distinct(JOBS.c.guild_id))
    query = (sa.select(column, sa.func.min(JOBS.c.guild_id), servers).where(JOBS.c.guild_id.is_not(None))
             .group_by(column))
    return {key: guild for key, guild, count in bind.execute(query).all() if count == 1}


def target_server(target: str | None, servers: Mapping[str, Mapping[int, int]]) -> int | None:
    """The server of an audit row's target ("job:12", "channel:34", "user:56"), when its jobs say one."""
    kind, _, value = (target or "").partition(":")
    return servers[kind].get(int(value)) if kind in servers and value.isdigit() else None


def set_servers(bind: sa.engine.Connection, name: str, key: str, servers: Mapping[Any, int]) -> None:
    """Give the rows of `name` whose `key` is in `servers` that server."""
    if not servers:
        return
    table = sa.table(name, sa.column(key), sa.column("guild_id"))
    statement = sa.update(table).where(table.c[key] == sa.bindparam("k")).values(guild_id=sa.bindparam("g"))
    bind.execute(statement, [{"k": value, "g": guild} for value, guild in servers.items()])


@contextmanager
def keeping_votes() -> Iterator[None]:
    """Keep the ⭐ votes while SQLite copies showcase_entries: dropping the old copy cascades to them."""
    bind = op.get_bind()
    saved = [dict(row) for row in bind.execute(sa.select(VOTES)).mappings()] if bind.dialect.name == "sqlite" else []
    yield
    if saved:
        bind.execute(sa.delete(VOTES))
        bind.execute(sa.insert(VOTES), saved)


def downgrade() -> None:
    """Keep one row per former key (GLOBAL first, else the lowest server), then drop `guild_id` everywhere."""
    bind = op.get_bind()
    for name, key in KEYED.items():
        keep_one(bind, name, [key])
        with op.batch_alter_table(name) as batch:
            batch.drop_constraint(f"pk_{name}", type_="primary")
            batch.create_primary_key(f"pk_{name}", [key])
            batch.drop_column("guild_id")
    keep_one(bind, "denylist_entries", ["pattern", "kind"])
    with op.batch_alter_table("denylist_entries") as batch:
        batch.drop_constraint("uq_denylist_entries_guild_id_pattern_kind", type_="unique")
        batch.create_unique_constraint("uq_denylist_entries_pattern_kind", ["pattern", "kind"])
        batch.drop_column("guild_id")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_index("ix_audit_log_guild_id_id")
        batch.drop_column("guild_id")
    with keeping_votes(), op.batch_alter_table("showcase_entries") as batch:
        batch.drop_index("ix_showcase_entries_guild_id_state_id")
        batch.drop_column("guild_id")


def keep_one(bind: sa.engine.Connection, name: str, keys: list[str]) -> None:
    """Delete every row of `name` that has the same `keys` as a row of a lower guild_id."""
    table = sa.table(name, *(sa.column(key) for key in keys), sa.column("guild_id"))
    other = table.alias("other")
    lower = sa.exists().where(*(other.c[key] == table.c[key] for key in keys), other.c.guild_id < table.c.guild_id)
    bind.execute(sa.delete(table).where(lower))
