"""Moderation: quota overrides and role defaults, run-time settings, blocks, channel rules, the audit log.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _stamped(*columns: sa.Column, by: str = "set_by", at: str = "set_at") -> list[sa.Column]:
    """The given columns plus who changed the row and when."""
    return [*columns, sa.Column(by, sa.BigInteger(), nullable=False),
            sa.Column(at, sa.DateTime(timezone=True), nullable=False)]


def upgrade() -> None:
    """Create the six moderation tables."""
    op.create_table(
        "quota_overrides",
        *_stamped(sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
                  sa.Column("max_videos", sa.Integer(), nullable=True),
                  sa.Column("counted_from", sa.DateTime(timezone=True), nullable=True)),
        sa.PrimaryKeyConstraint("user_id", name="pk_quota_overrides"),
    )
    op.create_table(
        "quota_role_defaults",
        *_stamped(sa.Column("role_id", sa.BigInteger(), autoincrement=False, nullable=False),
                  sa.Column("max_videos", sa.Integer(), nullable=False)),
        sa.PrimaryKeyConstraint("role_id", name="pk_quota_role_defaults"),
    )
    op.create_table(
        "moderation_settings",
        *_stamped(sa.Column("key", sa.String(64), nullable=False), sa.Column("value", sa.JSON(), nullable=False)),
        sa.PrimaryKeyConstraint("key", name="pk_moderation_settings"),
    )
    op.create_table(
        "blocks",
        *_stamped(sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
                  sa.Column("reason", sa.String(500), nullable=False),
                  sa.Column("until", sa.DateTime(timezone=True), nullable=True), by="blocked_by", at="blocked_at"),
        sa.PrimaryKeyConstraint("user_id", name="pk_blocks"),
    )
    op.create_table(
        "channel_rules",
        *_stamped(sa.Column("channel_id", sa.BigInteger(), autoincrement=False, nullable=False),
                  sa.Column("allowed", sa.Boolean(), nullable=False)),
        sa.PrimaryKeyConstraint("channel_id", name="pk_channel_rules"),
    )
    _create_audit_log()


def _create_audit_log() -> None:
    """Every moderator action and every refused attempt at one."""
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("actor_id", sa.BigInteger(), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(200), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("allowed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])


def downgrade() -> None:
    """Drop the moderation tables."""
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    for table in ("audit_log", "channel_rules", "blocks", "moderation_settings", "quota_role_defaults",
                  "quota_overrides"):
        op.drop_table(table)
