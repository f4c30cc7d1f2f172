"""Deliveries: what became of a done job's video on Discord (a post the process's end cut short is made at next start).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05

Adds `jobs.delivery`, indexed (pending, posted, unposted; NULL for jobs that are not done and for those done before this
revision, whose posts are not looked for).
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

log = logging.getLogger(__name__)

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add `jobs.delivery` and its index."""
    op.add_column("jobs", sa.Column("delivery", sa.String(16), nullable=True))
    op.create_index("ix_jobs_delivery", "jobs", ["delivery"])


def downgrade() -> None:
    """Drop `jobs.delivery` and its index; in place on SQLite (3.35 and later), where a copy of the table would
    cascade its deletion to the showcase entries and their votes. Videos whose post is still pending are named: the
    older release never posts them."""
    pending = op.get_bind().execute(sa.text("SELECT id FROM jobs WHERE delivery = 'pending' ORDER BY id")).scalars()
    lost = list(pending)
    if lost:
        log.warning("the older release will not post the finished videos whose post a stop cut short (%d: jobs %s): "
                    "their requesters see no video", len(lost), ", ".join(map(str, lost[:20])))
    op.drop_index("ix_jobs_delivery", table_name="jobs")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE jobs DROP COLUMN delivery")
    else:
        op.drop_column("jobs", "delivery")
