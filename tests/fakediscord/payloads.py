"""The fake's world (users, guilds, roles, channels) and the JSON shapes Discord gives them on the wire."""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass, field
from typing import Any

DISCORD_EPOCH_MS = 1420070400000
THREAD = 11  # a public thread's channel type
MiB = 1024 * 1024
DEFAULT_ATTACHMENT_LIMIT = 10 * MiB  # the per-attachment cap for bots since Jan 2025 (bot-anchors.md §3.8)


class Perm:
    """Permission bits (developers/topics/permissions.mdx)."""

    ADMINISTRATOR = 1 << 3
    MANAGE_GUILD = 1 << 5
    ADD_REACTIONS = 1 << 6
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    USE_EXTERNAL_EMOJIS = 1 << 18
    USE_APPLICATION_COMMANDS = 1 << 31
    SEND_MESSAGES_IN_THREADS = 1 << 38
    MODERATE_MEMBERS = 1 << 40
    ALL = (1 << 51) - 1

    EVERYONE = (
        VIEW_CHANNEL | SEND_MESSAGES | EMBED_LINKS | ATTACH_FILES | READ_MESSAGE_HISTORY | ADD_REACTIONS
        | USE_EXTERNAL_EMOJIS | USE_APPLICATION_COMMANDS | SEND_MESSAGES_IN_THREADS
    )  # fmt: skip
    MODERATOR = MANAGE_GUILD | MANAGE_MESSAGES | MODERATE_MEMBERS


class Snowflakes:
    """Strictly increasing, time-based snowflake ids, as Discord mints them."""

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> int:
        now = (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22
        self._last = max(self._last + 1, now)
        return self._last


def iso(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).isoformat()


@dataclass(eq=False)
class FakeUser:
    id: int
    name: str
    bot: bool = False


@dataclass(eq=False)
class FakeRole:
    id: int
    name: str
    permissions: int
    position: int = 0


@dataclass(eq=False)
class FakeChannel:
    id: int
    name: str
    guild_id: int | None
    type: int = 0  # 0 guild text, 1 DM, 11 public thread
    nsfw: bool = False
    recipient: FakeUser | None = None  # DM channels only
    parent_id: int | None = None  # a thread's channel
    owner_id: int | None = None  # who opened a thread


@dataclass(eq=False)
class FakeGuild:
    id: int
    name: str
    owner_id: int
    roles: list[FakeRole] = field(default_factory=list)  # roles[0] is @everyone (its id is the guild id)
    channels: list[FakeChannel] = field(default_factory=list)
    members: dict[int, list[int]] = field(default_factory=dict)  # user id -> ids of the roles beyond @everyone

    @property
    def everyone(self) -> FakeRole:
        return self.roles[0]

    def role(self, name: str) -> FakeRole:
        for role in self.roles:
            if role.name == name:
                return role
        raise LookupError(f"guild {self.name!r} has no role {name!r}; roles: {[r.name for r in self.roles]}")

    def permissions(self, role_ids: list[int]) -> int:
        """Guild-level permissions of a member holding these roles (@everyone implied)."""
        value = self.everyone.permissions
        for role in self.roles:
            if role.id in role_ids:
                value |= role.permissions
        return Perm.ALL if value & Perm.ADMINISTRATOR else value


def user_payload(user: FakeUser) -> dict[str, Any]:
    return {
        "id": str(user.id),
        "username": user.name,
        "global_name": None if user.bot else user.name,
        "discriminator": "0",
        "avatar": None,
        "bot": user.bot,
        "system": False,
        "public_flags": 0,
        "flags": 0,
    }


def member_payload(user: FakeUser, role_ids: list[int], joined_at: float) -> dict[str, Any]:
    return {
        "user": user_payload(user),
        "nick": None,
        "avatar": None,
        "roles": [str(r) for r in role_ids],
        "joined_at": iso(joined_at),
        "premium_since": None,
        "deaf": False,
        "mute": False,
        "flags": 0,
        "pending": False,
        "communication_disabled_until": None,
    }


def role_payload(role: FakeRole) -> dict[str, Any]:
    return {
        "id": str(role.id),
        "name": role.name,
        "color": 0,
        "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
        "hoist": False,
        "icon": None,
        "unicode_emoji": None,
        "position": role.position,
        "permissions": str(role.permissions),
        "managed": False,
        "mentionable": False,
        "flags": 0,
    }


def _thread_fields(thread: FakeChannel) -> dict[str, Any]:
    """What a thread's channel object has beyond a text channel's (channel.mdx, thread metadata)."""
    return {"owner_id": str(thread.owner_id), "message_count": 0, "member_count": 1,
            "thread_metadata": {"archived": False, "auto_archive_duration": 1440, "locked": False,
                                "archive_timestamp": "2026-01-01T00:00:00+00:00"}}


def channel_payload(channel: FakeChannel) -> dict[str, Any]:
    if channel.type == 1:
        assert channel.recipient is not None
        return {
            "id": str(channel.id),
            "type": 1,
            "last_message_id": None,
            "recipients": [user_payload(channel.recipient)],
        }
    return {
        "id": str(channel.id),
        "type": channel.type,
        "guild_id": str(channel.guild_id),
        "name": channel.name,
        "position": 0,
        "permission_overwrites": [],
        "nsfw": channel.nsfw,
        "topic": None,
        "last_message_id": None,
        "rate_limit_per_user": 0,
        "parent_id": None if channel.parent_id is None else str(channel.parent_id),
        "flags": 0,
        **(_thread_fields(channel) if channel.type == THREAD else {}),
    }


def guild_create_payload(
    guild: FakeGuild, users: dict[int, FakeUser], joined_at: float
) -> dict[str, Any]:
    members = [member_payload(users[uid], roles, joined_at) for uid, roles in guild.members.items()]
    return {
        "id": str(guild.id),
        "name": guild.name,
        "icon": None,
        "splash": None,
        "discovery_splash": None,
        "banner": None,
        "description": None,
        "owner_id": str(guild.owner_id),
        "region": "",
        "afk_channel_id": None,
        "afk_timeout": 300,
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "mfa_level": 0,
        "nsfw_level": 0,
        "premium_tier": 0,
        "premium_subscription_count": 0,
        "premium_progress_bar_enabled": False,
        "preferred_locale": "en-US",
        "features": [],
        "roles": [role_payload(r) for r in guild.roles],
        "emojis": [],
        "stickers": [],
        "soundboard_sounds": [],
        "channels": [channel_payload(c) for c in guild.channels if c.type != THREAD],
        "threads": [channel_payload(c) for c in guild.channels if c.type == THREAD],  # the active ones
        "members": members,
        "member_count": len(members),
        "presences": [],
        "voice_states": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "system_channel_id": None,
        "system_channel_flags": 0,
        "rules_channel_id": None,
        "public_updates_channel_id": None,
        "safety_alerts_channel_id": None,
        "vanity_url_code": None,
        "application_id": None,
        "max_members": 500000,
        "max_video_channel_users": 25,
        "joined_at": iso(joined_at),
        "large": False,
        "unavailable": False,
        "lazy": True,
        "incidents_data": None,
    }


def application_payload(app_id: int, bot: FakeUser, owner: FakeUser) -> dict[str, Any]:
    return {
        "id": str(app_id),
        "name": bot.name,
        "icon": None,
        "description": "",
        "summary": "",
        "type": None,
        "bot_public": True,
        "bot_require_code_grant": False,
        "bot": user_payload(bot),
        "owner": user_payload(owner),
        "team": None,
        "verify_key": "0" * 64,
        "flags": 0,
        "tags": [],
        "interactions_endpoint_url": None,  # must be null, or no INTERACTION_CREATE would reach the gateway
        "redirect_uris": [],
        "rpc_origins": [],
        "approximate_guild_count": 1,
    }


def button(custom_id: str, label: str = "Button", *, style: int = 1, disabled: bool = False) -> dict[str, Any]:
    """A button component, for seeding messages that the bot "sent before a restart"."""
    return {"type": 2, "style": style, "label": label, "custom_id": custom_id, "disabled": disabled}


def action_row(*components: dict[str, Any]) -> dict[str, Any]:
    return {"type": 1, "components": list(components)}
