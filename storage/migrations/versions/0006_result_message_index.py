"""Results by message: an index on `jobs.result_message_id`, so that a message deleted in Discord finds its job.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-09

The bot asks at every MESSAGE_DELETE (any message deleted in a channel it reads; it caches no messages, so it cannot
tell its own apart first) whether the message was a job's video; without the index each question read the whole jobs
log. Adds the index only; no row changes.
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Index `jobs.result_message_id`."""
    op.create_index("ix_jobs_result_message_id", "jobs", ["result_message_id"])


def downgrade() -> None:
    """Drop the index on `jobs.result_message_id`."""
    op.drop_index("ix_jobs_result_message_id", table_name="jobs")
