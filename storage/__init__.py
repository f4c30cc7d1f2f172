"""Persistence for the bot: SQLAlchemy 2.0 async models, a repository of frozen records, Alembic migrations.

Importing the package imports none of its modules: each name (`_LAZY`) is imported from its module on first use, so
that `python -m bot` can check DATABASE_URL (storage.urls) before anything heavy is loaded, and `python -m storage`
handles a Ctrl-C from its first line on (storage.__main__), the package having been imported before it runs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from storage.db import DEFAULT_URL, Hold, check_connection, create_engine, held_alone, migrate
    from storage.errors import (
        DatabaseInUse,
        DatabaseRefused,
        DatabaseUnreachable,
        DuplicateEntryError,
        FileHeld,
        InvalidDatabaseURL,
        InvalidTransitionError,
        JobNotFoundError,
        SchemaTooNew,
        ShowcaseError,
        StorageError,
    )
    from storage.locks import hold_file
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
        MAX_JOB_ID,
        MAX_SNOWFLAKE,
        Delivery,
        DenyKind,
        DenylistRecord,
        JobRecord,
        JobState,
        ShowcaseRecord,
        ShowcaseState,
        StopRequester,
    )
    from storage.repository import Repository
    from storage.retry import retry_on_locked
    from storage.showcase import ShowcaseRepository
    from storage.transactions import utc_now

_LAZY = {  # name -> the module that defines it (those below storage.locks import SQLAlchemy)
    "ACTIVE_STATES": "storage.records",
    "GLOBAL": "storage.records",
    "MAX_JOB_ID": "storage.records",
    "MAX_SNOWFLAKE": "storage.records",
    "Delivery": "storage.records",
    "DenyKind": "storage.records",
    "DenylistRecord": "storage.records",
    "JobRecord": "storage.records",
    "JobState": "storage.records",
    "ShowcaseRecord": "storage.records",
    "ShowcaseState": "storage.records",
    "StopRequester": "storage.records",
    "AuditRecord": "storage.moderation_records",
    "BlockRecord": "storage.moderation_records",
    "ChannelRuleRecord": "storage.moderation_records",
    "QuotaOverrideRecord": "storage.moderation_records",
    "RoleQuotaRecord": "storage.moderation_records",
    "ServerUsage": "storage.moderation_records",
    "UsageStats": "storage.moderation_records",
    "UserUsage": "storage.moderation_records",
    "DatabaseInUse": "storage.errors",
    "DatabaseRefused": "storage.errors",
    "DatabaseUnreachable": "storage.errors",
    "DuplicateEntryError": "storage.errors",
    "FileHeld": "storage.errors",
    "InvalidDatabaseURL": "storage.errors",
    "InvalidTransitionError": "storage.errors",
    "JobNotFoundError": "storage.errors",
    "SchemaTooNew": "storage.errors",
    "ShowcaseError": "storage.errors",
    "StorageError": "storage.errors",
    "hold_file": "storage.locks",
    "DEFAULT_URL": "storage.db",
    "check_connection": "storage.db",
    "create_engine": "storage.db",
    "held_alone": "storage.db",
    "Hold": "storage.db",
    "migrate": "storage.db",
    "ModerationRepository": "storage.moderation",
    "Repository": "storage.repository",
    "retry_on_locked": "storage.retry",
    "ShowcaseRepository": "storage.showcase",
    "utc_now": "storage.transactions",
}


def __getattr__(name: str) -> Any:
    """Import a name from its module the first time it is asked for."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "ACTIVE_STATES",
    "DEFAULT_URL",
    "GLOBAL",
    "MAX_JOB_ID",
    "MAX_SNOWFLAKE",
    "AuditRecord",
    "BlockRecord",
    "ChannelRuleRecord",
    "DatabaseInUse",
    "DatabaseRefused",
    "DatabaseUnreachable",
    "Delivery",
    "DenyKind",
    "DenylistRecord",
    "DuplicateEntryError",
    "FileHeld",
    "Hold",
    "InvalidDatabaseURL",
    "InvalidTransitionError",
    "JobNotFoundError",
    "JobRecord",
    "JobState",
    "ModerationRepository",
    "QuotaOverrideRecord",
    "Repository",
    "RoleQuotaRecord",
    "SchemaTooNew",
    "ServerUsage",
    "ShowcaseError",
    "ShowcaseRecord",
    "ShowcaseRepository",
    "ShowcaseState",
    "StopRequester",
    "StorageError",
    "UsageStats",
    "UserUsage",
    "check_connection",
    "create_engine",
    "held_alone",
    "hold_file",
    "migrate",
    "retry_on_locked",
    "utc_now",
]
