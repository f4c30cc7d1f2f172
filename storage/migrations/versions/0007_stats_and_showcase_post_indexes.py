"""Indexes for every server's stats (`jobs.created_at`) and for deleted showcase posts (channel, message).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-10

`/videomod stats` across servers counts the jobs created since a time, with no server to narrow them by; the bot asks
at every MESSAGE_DELETE whether the message was a showcase post (`showcase_entries` by channel and message). Without
the indexes each read the whole table. Adds the indexes only; no row changes.
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Index `jobs.created_at` and `showcase_entries` (channel_id, message_id)."""
    op.create_index("ix_jobs_created_at", "jobs", ["created_at"])
    op.create_index("ix_showcase_entries_channel_id_message_id", "showcase_entries", ["channel_id", "message_id"])


def downgrade() -> None:
    """Drop the two indexes."""
    op.drop_index("ix_showcase_entries_channel_id_message_id", table_name="showcase_entries")
    op.drop_index("ix_jobs_created_at", table_name="jobs")
