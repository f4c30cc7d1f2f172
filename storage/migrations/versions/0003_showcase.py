"""Showcase: deleted results, nominations with the moderators' decision, and ⭐ votes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add `jobs.deleted_at`; create `showcase_entries` and `showcase_votes`."""
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "showcase_entries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("nominated_by", sa.BigInteger(), nullable=False),
        sa.Column("nominated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("decided_by", sa.BigInteger(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("channel_id", sa.BigInteger(), nullable=True),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_showcase_entries_job_id_jobs", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_showcase_entries"),
        sa.UniqueConstraint("job_id", name="uq_showcase_entries_job_id"),
    )
    op.create_index("ix_showcase_entries_state_id", "showcase_entries", ["state", "id"])
    op.create_table(
        "showcase_votes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["entry_id"], ["showcase_entries.id"],
                                name="fk_showcase_votes_entry_id_showcase_entries", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_showcase_votes"),
        sa.UniqueConstraint("entry_id", "user_id", name="uq_showcase_votes_entry_id_user_id"),
    )


def downgrade() -> None:
    """Drop the showcase tables and `jobs.deleted_at`."""
    op.drop_table("showcase_votes")
    op.drop_index("ix_showcase_entries_state_id", table_name="showcase_entries")
    op.drop_table("showcase_entries")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("deleted_at")
