"""Indexes for every server's stats and for deleted showcase posts; who asked a running job's stop (uncharged).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-10

`/videomod stats` across servers counts the jobs created since a time, with no server to narrow them by; the bot asks
at every MESSAGE_DELETE whether the message was a showcase post (`showcase_entries` by channel and message). Without
the indexes each read the whole table: adds `ix_jobs_created_at` and `ix_showcase_entries_channel_id_message_id`.

Adds `jobs.stop_requested_by` (moderator, block, server_left; NULL for every existing row): a moderator's stop of a
running job, a block's or the bot's removal from its server, is kept with its cancel_requested flag, so a restart
before the job stops cancels it uncharged, as the stop itself would have.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

log = logging.getLogger(__name__)

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Index `jobs.created_at` and `showcase_entries` (channel_id, message_id); add `jobs.stop_requested_by`."""
    op.create_index("ix_jobs_created_at", "jobs", ["created_at"])
    op.create_index("ix_showcase_entries_channel_id_message_id", "showcase_entries", ["channel_id", "message_id"])
    op.add_column("jobs", sa.Column("stop_requested_by", sa.String(16), nullable=True))


def downgrade() -> None:
    """Drop the two indexes and `jobs.stop_requested_by`; in place on SQLite (3.35 and later), where a copy of the
    table would cascade its deletion to the showcase entries and their votes. Running jobs being stopped by other than
    their requesters (a moderator, a block, the bot's removal from their server) are named: the older release charges
    their requesters if it cancels them at its start."""
    asked = op.get_bind().execute(sa.text("SELECT id FROM jobs WHERE stop_requested_by IS NOT NULL AND state IN "
                                          "('queued', 'running') ORDER BY id")).scalars()
    charged = list(asked)
    if charged:
        log.warning("the older release will charge the requesters of the jobs being stopped by a moderator, a block "
                    "or the bot's removal from their server, if it cancels them at its start (%d: jobs %s)",
                    len(charged), ", ".join(map(str, charged[:20])))
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE jobs DROP COLUMN stop_requested_by")
    else:
        op.drop_column("jobs", "stop_requested_by")
    op.drop_index("ix_showcase_entries_channel_id_message_id", table_name="showcase_entries")
    op.drop_index("ix_jobs_created_at", table_name="jobs")
