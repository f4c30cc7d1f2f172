"""Persistence for the bot: SQLAlchemy 2.0 async models, a repository of frozen records, Alembic migrations."""

from storage.db import DEFAULT_URL, create_engine, migrate, shown_url
from storage.errors import (
    DuplicateEntryError,
    InvalidTransitionError,
    JobNotFoundError,
    ShowcaseError,
    StorageError,
)
from storage.moderation import ModerationRepository
from storage.moderation_records import (
    AuditRecord,
    BlockRecord,
    ChannelRuleRecord,
    QuotaOverrideRecord,
    RoleQuotaRecord,
    ServerUsage,
    UsageStats,
    UserUsage,
)
from storage.records import (
    ACTIVE_STATES,
    GLOBAL,
    TERMINAL_STATES,
    DenyKind,
    DenylistRecord,
    DenylistSeed,
    JobRecord,
    JobState,
    ShowcaseRecord,
    ShowcaseState,
)
from storage.repository import Repository
from storage.retry import retry_on_locked
from storage.showcase import ShowcaseRepository
from storage.transactions import utc_now

__all__ = [
    "ACTIVE_STATES",
    "DEFAULT_URL",
    "GLOBAL",
    "TERMINAL_STATES",
    "AuditRecord",
    "BlockRecord",
    "ChannelRuleRecord",
    "DenyKind",
    "DenylistRecord",
    "DenylistSeed",
    "DuplicateEntryError",
    "InvalidTransitionError",
    "JobNotFoundError",
    "JobRecord",
    "JobState",
    "ModerationRepository",
    "QuotaOverrideRecord",
    "Repository",
    "RoleQuotaRecord",
    "ServerUsage",
    "ShowcaseError",
    "ShowcaseRecord",
    "ShowcaseRepository",
    "ShowcaseState",
    "StorageError",
    "UsageStats",
    "UserUsage",
    "create_engine",
    "migrate",
    "retry_on_locked",
    "shown_url",
    "utc_now",
]
