"""What the fake remembers: every request, every message's current state, every interaction."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .payloads import FakeUser, iso, user_payload

EPHEMERAL = 1 << 6
LOADING = 1 << 7
MENTION = re.compile(r"<@!?(\d+)>")


@dataclass(frozen=True)
class UploadedFile:
    """One multipart file part as the client sent it (discord.py always says application/octet-stream)."""

    field: str  # "files[0]"
    filename: str
    content_type: str
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass
class RecordedRequest:
    method: str
    path: str  # without the /api/v10 prefix: "/webhooks/1/tok/messages/@original"
    route: str | None  # the template: "/webhooks/{application_id}/{token}/messages/{message_id}"; None if unknown
    query: dict[str, str]
    json: Any  # the JSON body, or a multipart body's payload_json
    files: list[UploadedFile]
    time: float  # time.monotonic() at arrival
    status: int = 0  # the status the fake answered; 0 while in flight

    def matches(self, pattern: str) -> bool:
        """fnmatch against "METHOD /path", e.g. "PATCH /webhooks/*/messages/@original"."""
        return fnmatch.fnmatchcase(f"{self.method} {self.path}", pattern)

    def summary(self, width: int = 160) -> str:
        files = f" files={[(f.filename, f.size) for f in self.files]}" if self.files else ""
        text = f"{self.method} {self.path} -> {self.status or '...'} json={self.json!r}{files}"
        return text if len(text) <= width else text[: width - 3] + "..."


@dataclass
class StoredAttachment:
    id: int
    filename: str
    content_type: str
    data: bytes
    description: str | None = None

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass
class FakeMessage:
    id: int
    channel_id: int
    guild_id: int | None
    author: FakeUser
    kind: str  # "original" (interaction response), "followup", "channel" (bot token route) or "seeded"
    created_at: float
    content: str = ""
    embeds: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[StoredAttachment] = field(default_factory=list)
    flags: int = 0
    type: int = 0
    webhook_id: int | None = None  # the application id, for messages sent through an interaction token
    interaction_id: int | None = None
    edited_at: float | None = None
    deleted: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)  # snapshot() before each edit, oldest first
    extra: dict[str, Any] = field(default_factory=dict)  # other fields last sent: allowed_mentions, nonce, ...

    @property
    def edits(self) -> int:
        return len(self.history)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def loading(self) -> bool:
        """A deferred response's "Bot is thinking..." placeholder, not yet edited."""
        return bool(self.flags & LOADING)

    def snapshot(self) -> dict[str, Any]:
        return {
            "content": self.content,
            "embeds": self.embeds,
            "components": self.components,
            "attachments": [(a.filename, a.size) for a in self.attachments],
            "flags": self.flags,
        }

    def walk_components(self) -> Iterator[dict[str, Any]]:
        stack = list(reversed(self.components))
        while stack:
            component = stack.pop()
            yield component
            children = list(component.get("components", []))
            children += [component[k] for k in ("accessory", "component") if k in component]
            stack.extend(reversed(children))

    def component(self, custom_id: str) -> dict[str, Any] | None:
        return next((c for c in self.walk_components() if c.get("custom_id") == custom_id), None)

    def custom_ids(self) -> list[str]:
        return [c["custom_id"] for c in self.walk_components() if "custom_id" in c]


def message_payload(
    message: FakeMessage, *, users: dict[int, FakeUser], cdn: str, app_id: int, interaction: InteractionRecord | None
) -> dict[str, Any]:
    mentioned = [users[int(i)] for i in MENTION.findall(message.content) if int(i) in users]
    payload = {
        "id": str(message.id),
        "channel_id": str(message.channel_id),
        "author": user_payload(message.author),
        "content": message.content,
        "timestamp": iso(message.created_at),
        "edited_timestamp": iso(message.edited_at) if message.edited_at else None,
        "tts": False,
        "mention_everyone": False,
        "mentions": [user_payload(u) for u in mentioned],
        "mention_roles": [],
        "mention_channels": [],
        "attachments": [_attachment_payload(message, a, cdn) for a in message.attachments],
        "embeds": message.embeds,
        "components": message.components,
        "pinned": False,
        "type": message.type,
        "flags": message.flags,
    }
    if message.guild_id is not None:
        payload["guild_id"] = str(message.guild_id)
    if message.webhook_id is not None:
        payload["webhook_id"] = str(message.webhook_id)
        payload["application_id"] = str(app_id)
    if interaction is not None:
        user = user_payload(interaction.user)
        payload["interaction_metadata"] = {
            "id": str(interaction.id),
            "type": interaction.type,
            "user": user,
            "authorizing_integration_owners": interaction.payload.get("authorizing_integration_owners", {}),
        }
        if interaction.type == 2:
            payload["interaction"] = {"id": str(interaction.id), "type": 2, "name": interaction.name, "user": user}
    return payload


def _attachment_payload(message: FakeMessage, attachment: StoredAttachment, cdn: str) -> dict[str, Any]:
    url = f"{cdn}/attachments/{message.channel_id}/{attachment.id}/{attachment.filename}"
    return {
        "id": str(attachment.id),
        "filename": attachment.filename,
        "size": attachment.size,
        "url": url,
        "proxy_url": url,
        "content_type": attachment.content_type,
        "description": attachment.description,
        "ephemeral": message.ephemeral,
    }


@dataclass
class InteractionRecord:
    """One dispatched INTERACTION_CREATE and everything the bot did with its token."""

    id: int
    token: str
    type: int  # 2 slash command, 3 component, 5 modal submit
    name: str  # command path ("videomod quota set"), custom_id for components and modals
    user: FakeUser
    payload: dict[str, Any]  # the INTERACTION_CREATE "d" that was dispatched
    dispatched_at: float
    attachment_size_limit: int
    message_id: int | None = None  # the clicked message, for components
    callbacks: list[dict[str, Any]] = field(default_factory=list)  # accepted callback bodies, in order
    callback_at: float | None = None
    original_id: int | None = None
    followup_ids: list[int] = field(default_factory=list)
    expired: bool = False

    @property
    def callback(self) -> dict[str, Any] | None:
        return self.callbacks[0] if self.callbacks else None

    @property
    def callback_type(self) -> int | None:
        return self.callbacks[0]["type"] if self.callbacks else None

    @property
    def acknowledged(self) -> bool:
        return any(cb["type"] != 8 for cb in self.callbacks)  # autocomplete results do not acknowledge
