"""ORM models of the moderation tables: quota overrides and defaults, blocks, channel rules and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from storage.models import Base


class QuotaOverride(Base):
    """One user's quota as moderators set it: a personal limit and/or a usage reset (jobs before it are free)."""

    __tablename__ = "quota_overrides"

    user_id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    max_videos: Mapped[int | None] = mapped_column(sa.Integer)  # None: the role or server default applies
    counted_from: Mapped[datetime | None]  # `quota reset`: usage is counted from here within the period
    set_by: Mapped[int] = mapped_column(sa.BigInteger)
    set_at: Mapped[datetime]


class RoleQuota(Base):
    """The quota of members holding a role (the most generous of a member's roles applies)."""

    __tablename__ = "quota_role_defaults"

    role_id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    max_videos: Mapped[int] = mapped_column(sa.Integer)
    set_by: Mapped[int] = mapped_column(sa.BigInteger)
    set_at: Mapped[datetime]


class ModerationSetting(Base):
    """A server-wide value moderators changed at run time (e.g. the default quota), overriding the settings file."""

    __tablename__ = "moderation_settings"

    key: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(sa.JSON)
    set_by: Mapped[int] = mapped_column(sa.BigInteger)
    set_at: Mapped[datetime]


class Block(Base):
    """A user who may not make videos, until a time or (until None) until unblocked."""

    __tablename__ = "blocks"

    user_id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    reason: Mapped[str] = mapped_column(sa.String(500))
    until: Mapped[datetime | None]
    blocked_by: Mapped[int] = mapped_column(sa.BigInteger)
    blocked_at: Mapped[datetime]


class ChannelRule(Base):
    """Where /video may be used: allowed channels form an allow-list once there is one; denied ones never."""

    __tablename__ = "channel_rules"

    channel_id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    allowed: Mapped[bool] = mapped_column(sa.Boolean)
    set_by: Mapped[int] = mapped_column(sa.BigInteger)
    set_at: Mapped[datetime]


class AuditEntry(Base):
    """One moderator action, or a refused attempt at one (allowed False)."""

    __tablename__ = "audit_log"
    __table_args__ = (sa.Index("ix_audit_log_at", "at"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    actor_id: Mapped[int] = mapped_column(sa.BigInteger)
    action: Mapped[str] = mapped_column(sa.String(64))
    target: Mapped[str | None] = mapped_column(sa.String(200))
    details: Mapped[dict[str, Any]]
    at: Mapped[datetime]
    allowed: Mapped[bool] = mapped_column(sa.Boolean)
