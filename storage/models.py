"""SQLAlchemy 2.0 ORM models: jobs, denylist and showcase (portable to SQLite and PostgreSQL).

Every moderation record carries the server it belongs to in `guild_id`; GLOBAL (0) is the scope above every server
(the operator's settings and the shipped denylist). Jobs keep the server they were asked in (None in DMs).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from storage.records import Delivery, DenyKind, JobState, ShowcaseState, StopRequester

# Stable constraint names, so later SQLite batch migrations can find and alter them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(sa.TypeDecorator[datetime]):
    """DateTime that accepts only aware datetimes, stores UTC, and always returns aware UTC (SQLite drops tz)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert to UTC, refusing naive datetimes whose zone would be a guess."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"datetimes must be timezone-aware, got naive {value.isoformat()}")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Attach UTC to the naive values SQLite returns; normalise aware ones to UTC."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _string_enum(enum_class: type[StrEnum], length: int) -> sa.Enum:
    """A VARCHAR holding the enum's values (not names), without a CHECK constraint so states can grow."""
    return sa.Enum(
        enum_class,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    """Declarative base with the shared naming convention."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), dict[str, Any]: sa.JSON()}


class Job(Base):
    """One request to generate a video, including refused ones: the usage log and the queue's truth."""

    __tablename__ = "jobs"
    __table_args__ = (
        sa.Index("ix_jobs_state_id", "state", "id"),
        sa.Index("ix_jobs_user_id_created_at", "user_id", "created_at"),
        sa.Index("ix_jobs_guild_id_created_at", "guild_id", "created_at"),
        sa.Index("ix_jobs_delivery", "delivery"),  # the few pending posts, looked for at each start
        sa.Index("ix_jobs_result_message_id", "result_message_id"),  # a message deleted in Discord: a job's video?
        sa.Index("ix_jobs_created_at", "created_at"),  # every server's numbers over a window (/videomod stats)
        # /videomod stats: every server's refusals of a window counted from the index alone, and one server's
        # (with only the first, SQLite took it or ix_jobs_guild_id_created_at for a server's, by schema order)
        sa.Index("ix_jobs_state_created_at_refusal_reason", "state", "created_at", "refusal_reason"),
        sa.Index("ix_jobs_state_guild_id_created_at", "state", "guild_id", "created_at"),
        # the ETA's last finished videos, newest first, their GPU seconds from the index alone (at each start)
        sa.Index("ix_jobs_state_finished_at_id_gpu_s", "state", "finished_at", "id", "gpu_s"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(sa.BigInteger)
    user_name: Mapped[str] = mapped_column(sa.String(100))
    guild_id: Mapped[int | None] = mapped_column(sa.BigInteger)
    channel_id: Mapped[int] = mapped_column(sa.BigInteger)
    prompt: Mapped[str] = mapped_column(sa.Text)
    negative_prompt: Mapped[str] = mapped_column(sa.Text, default="", server_default="")
    params: Mapped[dict[str, Any]]
    seed: Mapped[int | None] = mapped_column(sa.BigInteger)
    state: Mapped[JobState] = mapped_column(_string_enum(JobState, 16))
    refusal_reason: Mapped[str | None] = mapped_column(sa.String(64))
    error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    queue_wait_s: Mapped[float | None] = mapped_column(sa.Float)
    gpu_s: Mapped[float | None] = mapped_column(sa.Float)
    output_bytes: Mapped[int | None] = mapped_column(sa.Integer)
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0, server_default=sa.text("0"))
    cancel_requested: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())
    interaction_token: Mapped[str | None] = mapped_column(sa.Text)
    application_id: Mapped[int | None] = mapped_column(sa.BigInteger)
    status_message_id: Mapped[int | None] = mapped_column(sa.BigInteger)
    result_message_id: Mapped[int | None] = mapped_column(sa.BigInteger)
    deleted_at: Mapped[datetime | None]  # the requester or a moderator deleted the result (🗑)
    delivery: Mapped[Delivery | None] = mapped_column(_string_enum(Delivery, 16))  # a done job's post
    # who asked to stop it while it ran, when not its requester (with cancel_requested): cancelled uncharged
    stop_requested_by: Mapped[StopRequester | None] = mapped_column(_string_enum(StopRequester, 16))


class DenylistEntry(Base):
    """A prompt pattern the policy blocks (kind deny) or exempts (kind allow) in one server, or in all (GLOBAL);
    added_by None = shipped default."""

    __tablename__ = "denylist_entries"
    __table_args__ = (sa.UniqueConstraint("guild_id", "pattern", "kind"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    guild_id: Mapped[int] = mapped_column(sa.BigInteger)
    pattern: Mapped[str] = mapped_column(sa.String(256))
    category: Mapped[str] = mapped_column(sa.String(64))
    kind: Mapped[DenyKind] = mapped_column(_string_enum(DenyKind, 8))
    added_by: Mapped[int | None] = mapped_column(sa.BigInteger)
    created_at: Mapped[datetime]


class ShowcaseEntry(Base):
    """A result nominated for the showcase (at most one entry per job), and the moderators' decision."""

    __tablename__ = "showcase_entries"
    __table_args__ = (sa.Index("ix_showcase_entries_state_id", "state", "id"),
                      sa.Index("ix_showcase_entries_guild_id_state_id", "guild_id", "state", "id"),
                      # a message deleted in Discord: a showcase post? (asked at every deletion the bot sees)
                      sa.Index("ix_showcase_entries_channel_id_message_id", "channel_id", "message_id"))

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    guild_id: Mapped[int] = mapped_column(sa.BigInteger)  # the job's server, whose moderators decide
    job_id: Mapped[int] = mapped_column(sa.ForeignKey("jobs.id", ondelete="CASCADE"), unique=True)
    nominated_by: Mapped[int] = mapped_column(sa.BigInteger)
    nominated_at: Mapped[datetime]
    state: Mapped[ShowcaseState] = mapped_column(_string_enum(ShowcaseState, 16))
    decided_by: Mapped[int | None] = mapped_column(sa.BigInteger)
    decided_at: Mapped[datetime | None]
    reason: Mapped[str | None] = mapped_column(sa.Text)
    channel_id: Mapped[int | None] = mapped_column(sa.BigInteger)  # where the approved video was posted
    message_id: Mapped[int | None] = mapped_column(sa.BigInteger)


class ShowcaseVote(Base):
    """One member's ⭐ on a showcase entry."""

    __tablename__ = "showcase_votes"
    __table_args__ = (sa.UniqueConstraint("entry_id", "user_id"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    entry_id: Mapped[int] = mapped_column(sa.ForeignKey("showcase_entries.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(sa.BigInteger)
    created_at: Mapped[datetime]
