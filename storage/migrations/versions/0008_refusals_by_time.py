"""Refusals by time, the last finished videos: indexes on `jobs`, so stats and the ETA read only the rows they use.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-11

`/videomod stats` counts the refusals of its window per reason. Through `ix_jobs_state_id` it found every refused row
ever logged, then kept those of the window; a bot refusing spam for months read them all at each stats. Adds
`ix_jobs_state_created_at_refusal_reason` (every server's refusals of a window, or of all time, counted from the
index alone) and `ix_jobs_state_guild_id_created_at` (one server's refusals, of a window or of all time: with only
the first, SQLite without statistics saw it and the server's `ix_jobs_guild_id_created_at` as equally good for
`period:all` and took whichever came first in the schema, every server's refusals included).

The ETA starts from the GPU seconds of the last finished videos (`recent_render_seconds`, at each start). Through
a state index it read every finished job ever logged and sorted them by `finished_at`: a start slowed with the
bot's age. Adds `ix_jobs_state_finished_at_id_gpu_s`: the newest finished videos in order, their seconds from the
index alone, so it reads only the rows it keeps. No row changes.
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_jobs_state_created_at_refusal_reason": ["state", "created_at", "refusal_reason"],
    "ix_jobs_state_guild_id_created_at": ["state", "guild_id", "created_at"],
    "ix_jobs_state_finished_at_id_gpu_s": ["state", "finished_at", "id", "gpu_s"],
}


def upgrade() -> None:
    """Index the refusals of `jobs` by time, everywhere and per server, and the finished videos by end time."""
    for name, columns in INDEXES.items():
        op.create_index(name, "jobs", columns)


def downgrade() -> None:
    """Drop the three indexes."""
    for name in INDEXES:
        op.drop_index(name, table_name="jobs")
