"""A fake Discord (REST + gateway on 127.0.0.1) for driving the unmodified discord.py client in tests."""

from .faults import Hold
from .harness import running_bot
from .interactions import InteractionHandle
from .payloads import (
    DEFAULT_ATTACHMENT_LIMIT,
    FakeChannel,
    FakeGuild,
    FakeRole,
    FakeUser,
    MiB,
    Perm,
    action_row,
    button,
)
from .records import FakeMessage, InteractionRecord, RecordedRequest, StoredAttachment, UploadedFile
from .server import BOT_TOKEN, FakeDiscord

__all__ = [
    "BOT_TOKEN",
    "DEFAULT_ATTACHMENT_LIMIT",
    "FakeChannel",
    "FakeDiscord",
    "FakeGuild",
    "FakeMessage",
    "FakeRole",
    "FakeUser",
    "Hold",
    "InteractionHandle",
    "InteractionRecord",
    "MiB",
    "Perm",
    "RecordedRequest",
    "StoredAttachment",
    "UploadedFile",
    "action_row",
    "button",
    "running_bot",
]
