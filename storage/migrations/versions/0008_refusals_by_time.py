"""Refusals by time: an index on `jobs` (state, created_at), so `/videomod stats` reads only the window's refusals.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-11

`/videomod stats` counts the refusals of its window per reason. Through `ix_jobs_state_id` it found every refused row
ever logged, then kept those of the window; a bot refusing spam for months read them all at each stats. Adds
`ix_jobs_state_created_at` only; no row changes.
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Index `jobs` (state, created_at)."""
    op.create_index("ix_jobs_state_created_at", "jobs", ["state", "created_at"])


def downgrade() -> None:
    """Drop the index on `jobs` (state, created_at)."""
    op.drop_index("ix_jobs_state_created_at", table_name="jobs")
