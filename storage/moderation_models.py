"""ORM models of the moderation tables: quota overrides and defaults, blocks, channel rules and the audit log.

Each row belongs to one server (`guild_id`), or to every server (GLOBAL, 0: the operator's); the primary keys
include the server, so two servers' moderators never share or overwrite a row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from storage.models import Base


def _scope() -> Mapped[int]:
    """The server a row belongs to, first in the primary key (GLOBAL: every server's, the operator's)."""
    return mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)


class QuotaOverride(Base):
    """One user's quota in a server as its moderators set it (GLOBAL: the operator's cap over every server): a
    personal limit and/or a usage reset (jobs before it are free)."""

    __tablename__ = "quota_overrides"

    guild_id: Mapped[int] = _scope()
    user_id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    max_videos: Mapped[int | None] = mapped_column(sa.Integer)  # None: the role or server default applies
    counted_from: Mapped[datetime | None]  # `quota reset`: usage is counted from here within the period
    set_by: Mapped[int] = mapped_column(sa.BigInteger)
    set_at: Mapped[datetime]


class RoleQuota(Base):
    """The quota of a server's members holding a role (the most generous of a member's roles applies)."""

    __tablename__ = "quota_role_defaults"

    guild_id: Mapped[int] = _scope()
    role_id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    max_videos: Mapped[int] = mapped_column(sa.Integer)
    set_by: Mapped[int] = mapped_column(sa.BigInteger)
    set_at: Mapped[datetime]


class ModerationSetting(Base):
    """A server's value moderators changed at run time (the default quota and period, the /video presets, the
    showcase channel); GLOBAL rows are the operator's, for servers that set none."""

    __tablename__ = "moderation_settings"

    guild_id: Mapped[int] = _scope()
    key: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(sa.JSON)
    set_by: Mapped[int] = mapped_column(sa.BigInteger)
    set_at: Mapped[datetime]


class Block(Base):
    """A user who may not make videos in a server (GLOBAL: anywhere), until a time or (until None) until unblocked."""

    __tablename__ = "blocks"

    guild_id: Mapped[int] = _scope()
    user_id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    reason: Mapped[str] = mapped_column(sa.String(500))
    until: Mapped[datetime | None]
    blocked_by: Mapped[int] = mapped_column(sa.BigInteger)
    blocked_at: Mapped[datetime]


class ChannelRule(Base):
    """Where /video may be used in a server: allowed channels form an allow-list once there is one; denied ones
    never."""

    __tablename__ = "channel_rules"

    guild_id: Mapped[int] = _scope()
    channel_id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    allowed: Mapped[bool] = mapped_column(sa.Boolean)
    set_by: Mapped[int] = mapped_column(sa.BigInteger)
    set_at: Mapped[datetime]


class AuditEntry(Base):
    """One moderator action in a server (GLOBAL: an operator's), or a refused attempt at one (allowed False)."""

    __tablename__ = "audit_log"
    __table_args__ = (sa.Index("ix_audit_log_at", "at"), sa.Index("ix_audit_log_guild_id_id", "guild_id", "id"))

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    guild_id: Mapped[int] = mapped_column(sa.BigInteger)
    actor_id: Mapped[int] = mapped_column(sa.BigInteger)
    action: Mapped[str] = mapped_column(sa.String(64))
    target: Mapped[str | None] = mapped_column(sa.String(200))
    details: Mapped[dict[str, Any]]
    at: Mapped[datetime]
    allowed: Mapped[bool] = mapped_column(sa.Boolean)
