"""Acting as a user: INTERACTION_CREATE payloads for slash commands, clicks and modal submits; the test's handle."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .payloads import FakeChannel, FakeGuild, FakeRole, FakeUser, channel_payload, member_payload, role_payload
from .payloads import user_payload as user_json
from .records import FakeMessage, InteractionRecord

if TYPE_CHECKING:
    from .server import FakeDiscord

STRING, INTEGER, BOOLEAN, USER, CHANNEL, ROLE, NUMBER = 3, 4, 5, 6, 7, 8, 10
SELECTS = (3, 5, 6, 7, 8)  # component types whose interactions carry "values"


def infer_option_type(value: Any) -> int:
    """The option type a value implies when no synced definition says otherwise."""
    for cls, kind in ((bool, BOOLEAN), (int, INTEGER), (float, NUMBER), (str, STRING), (FakeUser, USER),
                      (FakeChannel, CHANNEL), (FakeRole, ROLE)):  # fmt: skip
        if isinstance(value, cls):
            return kind
    raise TypeError(f"cannot tell the option type of {value!r}")


def command_data(fake: FakeDiscord, path: str, options: dict[str, Any], guild: FakeGuild | None) -> dict[str, Any]:
    """`data` of a type-2 interaction for "name [group] [subcommand]", typed by the synced definition if any."""
    names = path.split()
    definition = fake.find_command(names[0], guild)
    data: dict[str, Any] = {"id": definition["id"] if definition else str(fake.ids.next()), "name": names[0], "type": 1}
    if definition and "guild_id" in definition:
        data["guild_id"] = definition["guild_id"]
    container, defs = data, definition.get("options", []) if definition else None
    for depth, name in enumerate(names[1:], start=2):
        sub = next((o for o in defs if o["name"] == name and o["type"] in (1, 2)), None) if defs is not None else None
        if defs is not None and sub is None:
            raise ValueError(f"/{' '.join(names[:depth - 1])} has no subcommand {name!r}; it has {_names(defs)}")
        entry = {"name": name, "type": sub["type"] if sub else 1 if depth == len(names) else 2, "options": []}
        container["options"] = [entry]
        container, defs = entry, sub.get("options", []) if sub else None
    if defs is not None and any(o["type"] in (1, 2) for o in defs):
        raise ValueError(f"/{path} is a group; name one of its subcommands: {_names(defs)}")
    resolved: dict[str, dict[str, Any]] = {}
    container["options"] = _options(fake, defs, options, resolved, guild, path)
    if resolved:
        data["resolved"] = resolved
    return data


def _names(defs: list[dict[str, Any]]) -> list[str]:
    return [o["name"] for o in defs]


def _options(
    fake: FakeDiscord, defs: list[dict[str, Any]] | None, options: dict[str, Any],
    resolved: dict[str, dict[str, Any]], guild: FakeGuild | None, path: str,
) -> list[dict[str, Any]]:  # fmt: skip
    by_name = {d["name"]: d for d in defs or []}
    if defs is not None:
        unknown = sorted(set(options) - set(by_name))
        missing = [d["name"] for d in defs if d.get("required") and d["name"] not in options]
        if unknown or missing:
            raise ValueError(f"/{path}: unknown options {unknown}, missing required {missing}; has {_names(defs)}")
    out = []
    for name, value in options.items():
        definition = by_name.get(name, {})
        kind = definition.get("type") or infer_option_type(value)
        wire = _wire_value(fake, kind, value, resolved, guild)
        _check_constraints(f"/{path} {name}", definition, wire)
        out.append({"name": name, "type": kind, "value": wire})
    return out


def _wire_value(
    fake: FakeDiscord, kind: int, value: Any, resolved: dict[str, dict[str, Any]], guild: FakeGuild | None
) -> Any:
    python_type = {STRING: str, INTEGER: int, BOOLEAN: bool, NUMBER: (int, float)}.get(kind)
    if python_type is not None:
        if not isinstance(value, python_type) or (kind != BOOLEAN and isinstance(value, bool)):
            raise TypeError(f"option type {kind} needs a {python_type}, got {value!r}")
        return float(value) if kind == NUMBER else value
    if kind == USER:
        user = value if isinstance(value, FakeUser) else fake.users[int(value)]
        resolved.setdefault("users", {})[str(user.id)] = user_json(user)
        if guild is not None and user.id in guild.members:
            member = member_payload(user, guild.members[user.id], fake.started_at)
            member.pop("user")
            member["permissions"] = str(guild.permissions(guild.members[user.id]))
            resolved.setdefault("members", {})[str(user.id)] = member
        return str(user.id)
    if kind == CHANNEL:
        channel = value if isinstance(value, FakeChannel) else fake.channels[int(value)]
        entry = {**channel_payload(channel), "permissions": str(fake.member_permissions(fake.bot_user, channel))}
        resolved.setdefault("channels", {})[str(channel.id)] = entry
        return str(channel.id)
    if kind == ROLE:
        assert guild is not None, "role options exist only in guilds"
        role = value if isinstance(value, FakeRole) else next(r for r in guild.roles if r.id == int(value))
        resolved.setdefault("roles", {})[str(role.id)] = role_payload(role)
        return str(role.id)
    raise TypeError(f"option type {kind} is not supported by the fake")


def _check_constraints(where: str, definition: dict[str, Any], value: Any) -> None:
    """What the Discord client enforces before a command can be sent at all."""
    choices = [c["value"] for c in definition.get("choices") or []]
    if choices and value not in choices:
        raise ValueError(f"{where}: {value!r} is not one of the choices {choices}")
    low, high = definition.get("min_value"), definition.get("max_value")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{where}: {value!r} is outside [{low}, {high}]")
    low, high = definition.get("min_length"), definition.get("max_length")
    if (low is not None and len(value) < low) or (high is not None and len(value) > high):
        raise ValueError(f"{where}: length {len(value)} is outside [{low}, {high}]")


def interaction_payload(
    fake: FakeDiscord, kind: int, data: dict[str, Any], *, user: FakeUser, channel: FakeChannel,
    roles: list[FakeRole | int] | None, permissions: int | None, locale: str, attachment_size_limit: int,
) -> dict[str, Any]:  # fmt: skip
    """The INTERACTION_CREATE "d" common to every interaction type."""
    iid = fake.ids.next()
    payload: dict[str, Any] = {
        "id": str(iid),
        "application_id": str(fake.app_id),
        "type": kind,
        "token": f"itk-{iid}-{secrets.token_urlsafe(24)}",
        "version": 1,
        "channel_id": str(channel.id),
        "app_permissions": str(fake.member_permissions(fake.bot_user, channel)),
        "locale": locale,
        "entitlements": [],
        "attachment_size_limit": attachment_size_limit,  # discord.py reads this key unconditionally
        "data": data,
    }
    guild = fake.guild_of(channel)
    if guild is None:  # a DM with the bot
        payload.update(user=user_json(user), context=1, authorizing_integration_owners={"1": str(user.id)})
        payload["channel"] = channel_payload(channel)
        return payload
    role_ids = guild.members.get(user.id, []) if roles is None else [getattr(r, "id", r) for r in roles]
    member_perms = guild.permissions(role_ids) if permissions is None else permissions
    payload.update(
        guild_id=str(guild.id),
        guild={"id": str(guild.id), "locale": "en-US", "features": []},
        guild_locale="en-US",
        member={**member_payload(user, role_ids, fake.started_at), "permissions": str(member_perms)},
        channel={**channel_payload(channel), "permissions": str(member_perms)},
        context=0,
        authorizing_integration_owners={"0": str(guild.id)},
    )
    return payload


def modal_components(modal: dict[str, Any], values: dict[str, Any]) -> list[dict[str, Any]]:
    """What the client submits for a shown modal: its rows/labels, each input carrying the user's value."""
    wanted = dict(values)

    def answer(component: dict[str, Any]) -> dict[str, Any]:
        custom_id = component["custom_id"]
        if custom_id not in wanted and component.get("required", True) and component["type"] == 4:
            raise ValueError(f"modal input {custom_id!r} is required")
        value = wanted.pop(custom_id, "" if component["type"] == 4 else [])
        key = "value" if component["type"] == 4 else "values"
        return {"type": component["type"], "id": component.get("id", 0), "custom_id": custom_id, key: value}

    submitted = []
    for top in modal["components"]:
        if top["type"] == 1:
            submitted.append({"type": 1, "components": [answer(c) for c in top["components"]]})
        elif top["type"] == 18:
            submitted.append({"type": 18, "id": top.get("id", 0), "component": answer(top["component"])})
    if wanted:
        raise ValueError(f"modal {modal['custom_id']!r} has no inputs {sorted(wanted)}")
    return submitted


class InteractionHandle:
    """The test's view of one interaction: what the bot answered, and ways to wait for it."""

    def __init__(self, fake: FakeDiscord, record: InteractionRecord) -> None:
        self.fake = fake
        self.record = record

    def __repr__(self) -> str:
        return f"<InteractionHandle id={self.id} {self.record.name!r} callback={self.callback_type}>"

    @property
    def id(self) -> int:
        return self.record.id

    @property
    def token(self) -> str:
        return self.record.token

    @property
    def callback(self) -> dict[str, Any] | None:
        return self.record.callback

    @property
    def callback_type(self) -> int | None:
        return self.record.callback_type

    @property
    def original(self) -> FakeMessage | None:
        """The response message (the clicked message after callback 6 or 7); None before a callback creates one."""
        original_id = self.record.original_id
        return None if original_id is None else self.fake.messages.get(original_id)

    @property
    def answer(self) -> FakeMessage | None:
        """What the user sees of the response: the original, or — once the bot deleted it — its first followup."""
        original = self.original
        if original is not None and original.deleted:
            return self.followups[0] if self.followups and not self.followups[0].deleted else None
        return original

    @property
    def followups(self) -> list[FakeMessage]:
        """Followups in order; the first one after a thinking defer is the original message itself."""
        return [self.fake.messages[i] for i in self.record.followup_ids]

    @property
    def modal(self) -> dict[str, Any] | None:
        callback = self.callback
        return callback["data"] if callback and callback["type"] == 9 else None

    async def wait_callback(self, timeout: float = 10.0) -> dict[str, Any]:
        return await self.fake.wait_for(lambda: self.callback, timeout=timeout, what=f"a callback for {self!r}")

    async def wait_deferred(self, timeout: float = 10.0) -> dict[str, Any]:
        callback = await self.wait_callback(timeout)
        if callback["type"] not in (5, 6):
            raise AssertionError(f"{self!r} was answered with callback type {callback['type']}, not a deferral")
        return callback

    async def wait_modal(self, timeout: float = 10.0) -> dict[str, Any]:
        callback = await self.wait_callback(timeout)
        if callback["type"] != 9:
            raise AssertionError(f"{self!r} was answered with callback type {callback['type']}, not a modal")
        return callback["data"]

    async def wait_original(
        self, predicate: Callable[[FakeMessage], bool] | None = None, timeout: float = 10.0
    ) -> FakeMessage:
        """The original response once it satisfies predicate (default: it exists and is no longer "thinking")."""
        check = predicate or (lambda m: not m.loading)

        def ready() -> FakeMessage | None:
            message = self.original
            return message if message is not None and check(message) else None

        return await self.fake.wait_for(ready, timeout=timeout, what=f"the original response of {self!r}")

    async def wait_answer(
        self, predicate: Callable[[FakeMessage], bool] | None = None, timeout: float = 10.0
    ) -> FakeMessage:
        """What the user is left with: the original response (default: once no longer "thinking"), or — when the bot
        deleted it — its first followup."""
        check = predicate or (lambda m: not m.loading)

        def ready() -> FakeMessage | None:
            message = self.answer
            return message if message is not None and check(message) else None

        return await self.fake.wait_for(ready, timeout=timeout, what=f"the answer to {self!r}")

    async def wait_followup(
        self, predicate: Callable[[FakeMessage], bool] | None = None, timeout: float = 10.0
    ) -> FakeMessage:
        def found() -> FakeMessage | None:
            return next((m for m in self.followups if predicate is None or predicate(m)), None)

        return await self.fake.wait_for(found, timeout=timeout, what=f"a followup of {self!r}")
