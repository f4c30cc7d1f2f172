"""FakeDiscord: a local Discord (REST + gateway) on 127.0.0.1 that the unmodified discord.py client talks to."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import discord
import yarl
from aiohttp import web

from .faults import Fault, Faults, Hold
from .gateway import Gateway
from .interactions import (
    SELECTS,
    InteractionHandle,
    command_data,
    interaction_payload,
    modal_components,
)
from .payloads import (
    DEFAULT_ATTACHMENT_LIMIT,
    THREAD,
    FakeChannel,
    FakeGuild,
    FakeRole,
    FakeUser,
    MiB,
    Perm,
    Snowflakes,
    channel_payload,
    guild_create_payload,
)
from .records import FakeMessage, InteractionRecord, RecordedRequest, message_payload
from .rest import RestAPI
from .waiting import Watch

T = TypeVar("T")
BOT_TOKEN = "MTExMTExMTExMTExMTExMTEx.GfAkEd.the-fake-discords-bot-token"  # shaped like one: the settings check it


class FakeDiscord:
    """One bot, its application, one guild with a text channel (more on request), and users to act as.

    Start it with `async with FakeDiscord() as fake:`; point discord.py at it with `fake.patched_client()`
    (or the `fake_discord` fixture, which does both).
    """

    def __init__(
        self,
        *,
        token: str = BOT_TOKEN,
        bot_name: str = "VideoBot",
        guild_name: str = "Test Guild",
        channel_name: str = "general",
        moderator_role: str | None = "Moderator",
        max_attachment_size: int = DEFAULT_ATTACHMENT_LIMIT,
    ) -> None:
        self.ids = Snowflakes()
        self.token = token
        self.app_id = self.ids.next()
        self.bot_user = FakeUser(self.app_id, bot_name, bot=True)  # modern apps: bot user id == application id
        self.owner = FakeUser(self.ids.next(), "owner")
        self.users: dict[int, FakeUser] = {u.id: u for u in (self.bot_user, self.owner)}
        self.started_at = time.time()
        self.guilds: list[FakeGuild] = []
        self.channels: dict[int, FakeChannel] = {}
        self.hidden: set[int] = set()  # channels the bot lost View Channel in (`hide_channel`): 403 (50001) there
        self.history_denied: set[int] = set()  # channels the bot may not read the history of (`deny_history`)
        self.left: list[FakeGuild] = []  # guilds the bot left (DELETE /users/@me/guilds/{id}), in order
        self.guild = self.add_guild(guild_name, channels=[channel_name], moderator_role=moderator_role)
        self.channel = self.guild.channels[0]
        self.moderator_role = self.guild.role(moderator_role) if moderator_role else None
        self._default_user: FakeUser | None = None

        self.requests: list[RecordedRequest] = []  # every REST request, in arrival order
        self.unhandled: list[RecordedRequest] = []  # requests to routes the fake does not know (answered 404)
        self.watch = Watch(self.describe)
        self.server_errors = self.watch.server_errors  # tracebacks of bugs in the fake itself
        self.bot_errors = self.watch.bot_errors  # ERROR records from the "discord" loggers
        self.messages: dict[int, FakeMessage] = {}  # current state of every message, by id, in creation order
        self.commands: list[dict[str, Any]] = []  # global command definitions as last synced (with ids)
        self.guild_commands: dict[int, list[dict[str, Any]]] = {}
        self.interactions: dict[int, InteractionRecord] = {}
        self._by_token: dict[str, InteractionRecord] = {}

        self.max_attachment_size = max_attachment_size  # per file, for channel messages (413 / 40005 above it)
        self.callback_deadline: float | None = None  # seconds; set 3.0 to enforce Discord's acknowledgement window
        self.faults = Faults(self.now)
        self._holds: list[Hold] = []  # gates no request has met yet, in the order they were set up
        self._holding: list[Hold] = []  # gates that caught their request: released at the latest when the fake closes
        self._drops: list[str] = []  # patterns of requests whose connection is closed unanswered
        self.gateway = Gateway(self)
        self.rest = RestAPI(self)
        self.port = 0
        self._runner: web.AppRunner | None = None

    # -- lifecycle -----------------------------------------------------------------------------------------

    async def __aenter__(self) -> FakeDiscord:
        app = web.Application(client_max_size=256 * MiB)
        self.rest.install(app)
        self.gateway.install(app)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]
        self.watch.attach()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.watch.detach()
        for hold in self._holding:  # a request a test left held (its client killed, say) is let go, not left pending
            hold.set()
        await self.gateway.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """The value for discord.http.Route.BASE."""
        return f"{self.url}/api/v10"

    @property
    def gateway_url(self) -> str:
        """The value for discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY (as a yarl.URL)."""
        return f"ws://127.0.0.1:{self.port}/gateway"

    @contextlib.contextmanager
    def patched_client(self) -> Iterator[FakeDiscord]:
        """Point discord.py's two class attributes at this fake for the duration (bot-anchors.md §4.4)."""
        route, websocket = discord.http.Route, discord.gateway.DiscordWebSocket
        saved = route.BASE, websocket.DEFAULT_GATEWAY
        route.BASE, websocket.DEFAULT_GATEWAY = self.api_url, yarl.URL(self.gateway_url)
        try:
            yield self
        finally:
            route.BASE, websocket.DEFAULT_GATEWAY = saved

    @staticmethod
    def now() -> float:
        return time.monotonic()

    @staticmethod
    def wall_time() -> float:
        return time.time()

    # -- the world -----------------------------------------------------------------------------------------

    def add_guild(
        self, name: str, *, channels: list[str] | tuple[str, ...] = ("general",), moderator_role: str | None = None
    ) -> FakeGuild:
        """A guild the bot is in; add guilds before the bot connects (they arrive as GUILD_CREATE)."""
        guild_id = self.ids.next()
        roles = [FakeRole(guild_id, "@everyone", Perm.EVERYONE)]
        if moderator_role:
            roles.append(FakeRole(self.ids.next(), moderator_role, Perm.MODERATOR, position=1))
        guild = FakeGuild(guild_id, name, self.owner.id, roles, members={self.bot_user.id: [], self.owner.id: []})
        self.guilds.append(guild)
        for channel in channels:
            self.add_channel(channel, guild=guild)
        return guild

    async def invite(
        self, name: str, *, channels: list[str] | tuple[str, ...] = ("general",), moderator_role: str | None = None
    ) -> FakeGuild:
        """Someone invites the connected bot to a new guild: GUILD_CREATE arrives (discord.py's on_guild_join)."""
        guild = self.add_guild(name, channels=channels, moderator_role=moderator_role)
        payload = guild_create_payload(guild, self.users, self.wall_time())
        del payload["unavailable"]  # a join has no "unavailable" (false: a known guild came back, guild_available)
        await self.gateway.dispatch("GUILD_CREATE", payload)
        return guild

    async def kick(self, guild: FakeGuild) -> None:
        """The guild's owner removes the connected bot: gone from the world, GUILD_DELETE arrives (on_guild_remove)."""
        self.leave(guild.id)
        await self.gateway.dispatch("GUILD_DELETE", {"id": str(guild.id)})

    def leave(self, guild_id: int) -> FakeGuild | None:
        """The bot leaves a guild (its REST call): gone from the world, kept in `left`."""
        guild = next((g for g in self.guilds if g.id == guild_id), None)
        if guild is not None:
            self.guilds.remove(guild)
            self.left.append(guild)
        return guild

    def add_member(
        self, user: FakeUser, guild: FakeGuild, *, roles: tuple[FakeRole | int, ...] | list[Any] = ()
    ) -> None:
        """Make an existing user a member of another guild too (one person in two servers)."""
        guild.members[user.id] = [r.id if isinstance(r, FakeRole) else int(r) for r in roles]

    def add_channel(self, name: str, *, guild: FakeGuild | None = None, nsfw: bool = False) -> FakeChannel:
        guild = guild or self.guild
        channel = FakeChannel(self.ids.next(), name, guild.id, nsfw=nsfw)
        guild.channels.append(channel)
        self.channels[channel.id] = channel
        return channel

    def add_thread(self, parent: FakeChannel, name: str) -> FakeChannel:
        """An active public thread members opened in `parent` (added before the bot connects: its GUILD_CREATE lists
        it among the guild's threads)."""
        guild = self.guild_of(parent)
        assert guild is not None, "threads are opened in a guild's channels"
        thread = FakeChannel(self.ids.next(), name, parent.guild_id, type=THREAD, parent_id=parent.id,
                             owner_id=guild.owner_id)
        guild.channels.append(thread)
        self.channels[thread.id] = thread
        return thread

    async def delete_channel(self, channel: FakeChannel, *, away: bool = False) -> None:
        """A moderator deletes a guild channel in Discord: gone from the world with its messages (its routes answer
        404, 10003 Unknown Channel), and CHANNEL_DELETE arrives (discord.py's on_guild_channel_delete; THREAD_DELETE for
        a thread, on_raw_thread_delete) unless the bot is `away` (not connected: no event ever tells it)."""
        guild = self.guild_of(channel)
        if guild is not None:
            guild.channels.remove(channel)
        del self.channels[channel.id]
        for message in self.messages.values():
            if message.channel_id == channel.id:
                message.deleted = True
        if not away and channel.type == THREAD:
            await self.gateway.dispatch("THREAD_DELETE", {"id": str(channel.id), "guild_id": str(channel.guild_id),
                                                          "parent_id": str(channel.parent_id), "type": THREAD})
        elif not away:
            await self.gateway.dispatch("CHANNEL_DELETE", channel_payload(channel))

    def hide_channel(self, channel: FakeChannel) -> None:
        """The bot loses View Channel in a channel (a permission overwrite): its message routes there answer 403
        (50001 Missing Access). Discord tells the bot no more than that."""
        self.hidden.add(channel.id)

    def deny_history(self, channel: FakeChannel) -> None:
        """The bot sees a channel but loses Read Message History there: as Discord answers, the channel's history is
        an empty list (200, no error) and a message of it 403 (50013 Missing Permissions)."""
        self.history_denied.add(channel.id)

    def add_role(self, name: str, permissions: int = 0, *, guild: FakeGuild | None = None) -> FakeRole:
        guild = guild or self.guild
        role = FakeRole(self.ids.next(), name, permissions, position=len(guild.roles))
        guild.roles.append(role)
        return role

    async def delete_role(self, role: FakeRole, *, guild: FakeGuild | None = None, away: bool = False) -> None:
        """A moderator deletes a role in Discord: gone from the guild and from every member holding it (a later
        GUILD_CREATE lists it no more), and GUILD_ROLE_DELETE arrives (discord.py's on_guild_role_delete) unless the
        bot is `away` (not connected: no event ever tells it)."""
        guild = guild or self.guild
        assert role is not guild.everyone, "@everyone cannot be deleted"
        guild.roles.remove(role)
        for role_ids in guild.members.values():
            if role.id in role_ids:
                role_ids.remove(role.id)
        if not away:
            await self.gateway.dispatch("GUILD_ROLE_DELETE", {"guild_id": str(guild.id), "role_id": str(role.id)})

    def remove_member(self, user: FakeUser, guild: FakeGuild | None = None) -> None:
        """A member leaves the guild (or is kicked): a user option naming them then carries `resolved.users` without
        `resolved.members`, as Discord sends for a non-member. No event reaches the bot: GUILD_MEMBER_REMOVE needs
        the privileged members intent."""
        del (guild or self.guild).members[user.id]

    def make_user(
        self, id: int | None = None, name: str | None = None, *, roles: tuple[FakeRole | int, ...] | list[Any] = (),
        guild: FakeGuild | None = None,
    ) -> FakeUser:  # fmt: skip
        """A human member of `guild` (default guild) holding `roles`, e.g. roles=[fake.moderator_role]."""
        if isinstance(id, str):
            raise TypeError(f"make_user(id, name): pass the name {id!r} by keyword")
        user = FakeUser(id or self.ids.next(), name or f"user{len(self.users)}")
        self.users[user.id] = user
        (guild or self.guild).members[user.id] = [r.id if isinstance(r, FakeRole) else int(r) for r in roles]
        return user

    @property
    def default_user(self) -> FakeUser:
        if self._default_user is None:
            self._default_user = self.make_user(name="alice")
        return self._default_user

    def dm_channel(self, user: FakeUser) -> FakeChannel:
        for channel in self.channels.values():
            if channel.type == 1 and channel.recipient is user:
                return channel
        channel = FakeChannel(self.ids.next(), "", None, type=1, recipient=user)
        self.channels[channel.id] = channel
        return channel

    def guild_of(self, channel: FakeChannel) -> FakeGuild | None:
        return next((g for g in self.guilds if g.id == channel.guild_id), None)

    def member_permissions(self, user: FakeUser, channel: FakeChannel) -> int:
        guild = self.guild_of(channel)
        if guild is None:
            return Perm.EVERYONE
        return guild.permissions(guild.members.get(user.id, []))

    def find_command(self, name: str, guild: FakeGuild | None) -> dict[str, Any] | None:
        """The synced chat-input definition a user would see: guild commands first, then global."""
        pools = ([*self.guild_commands.get(guild.id, [])] if guild else []) + self.commands
        return next((c for c in pools if c["name"] == name and c.get("type", 1) == 1), None)

    def seed_message(
        self, content: str = "", *, channel: FakeChannel | None = None, components: list[dict[str, Any]] | None = None,
        embeds: list[dict[str, Any]] | None = None, author: FakeUser | None = None,
    ) -> FakeMessage:  # fmt: skip
        """A message that exists on "Discord" but the running bot never sent (e.g. sent before a restart)."""
        channel = channel or self.channel
        message = FakeMessage(
            self.ids.next(), channel.id, channel.guild_id, author or self.bot_user, "seeded", self.wall_time(),
            content=content, embeds=embeds or [], components=components or [],
        )  # fmt: skip
        self.messages[message.id] = message
        return message

    async def delete_by_hand(self, message: FakeMessage) -> None:
        """A member (its author, or a moderator with Manage Messages) deletes a message in Discord: its routes answer
        404 (10008 Unknown Message) from now on, and MESSAGE_DELETE arrives (discord.py's on_raw_message_delete)."""
        message.deleted = True
        data = {"id": str(message.id), "channel_id": str(message.channel_id)}
        if message.guild_id is not None:
            data["guild_id"] = str(message.guild_id)
        await self.gateway.dispatch("MESSAGE_DELETE", data)

    async def purge_by_hand(self, *messages: FakeMessage) -> None:
        """A moderation bot purges `messages` of one channel (Discord's bulk delete): their routes answer 404 from now
        on, and one MESSAGE_DELETE_BULK arrives (discord.py's on_raw_bulk_message_delete)."""
        for message in messages:
            message.deleted = True
        first = messages[0]
        data: dict[str, Any] = {"ids": [str(message.id) for message in messages], "channel_id": str(first.channel_id)}
        if first.guild_id is not None:
            data["guild_id"] = str(first.guild_id)
        await self.gateway.dispatch("MESSAGE_DELETE_BULK", data)

    def delete_while_away(self, *messages: FakeMessage) -> None:
        """Messages deleted in Discord while the bot is not connected: their routes answer 404 (10008 Unknown
        Message), and no event ever tells the bot (Discord does not replay them to a new session)."""
        for message in messages:
            message.deleted = True

    def message_json(self, message: FakeMessage) -> dict[str, Any]:
        interaction = self.interactions.get(message.interaction_id) if message.interaction_id else None
        return message_payload(message, users=self.users, cdn=self.url, app_id=self.app_id, interaction=interaction)

    def token_interaction(self, token: str) -> InteractionRecord | None:
        return self._by_token.get(token)

    def interaction(self, interaction_id: int) -> InteractionHandle:
        return InteractionHandle(self, self.interactions[interaction_id])

    def requests_to(self, pattern: str) -> list[RecordedRequest]:
        """Recorded requests whose "METHOD /path" fnmatches pattern, e.g. "PATCH /webhooks/*/@original"."""
        return [r for r in self.requests if r.matches(pattern)]

    # -- acting as a user ----------------------------------------------------------------------------------

    async def slash(
        self, command: str, options: dict[str, Any] | None = None, *, user: FakeUser | None = None,
        channel: FakeChannel | None = None, guild: FakeGuild | None = None, roles: list[Any] | None = None,
        permissions: int | None = None, locale: str = "en-US", attachment_size_limit: int = DEFAULT_ATTACHMENT_LIMIT,
    ) -> InteractionHandle:  # fmt: skip
        """Run "/name [group] [sub]" with options; roles/permissions override the member's own."""
        channel = channel or (guild.channels[0] if guild else self.channel)
        user = user or self.default_user
        data = command_data(self, command, options or {}, self.guild_of(channel))
        payload = interaction_payload(
            self, 2, data, user=user, channel=channel, roles=roles, permissions=permissions, locale=locale,
            attachment_size_limit=attachment_size_limit,
        )  # fmt: skip
        return await self._send(payload, command, user, attachment_size_limit)

    async def autocomplete(
        self, command: str, options: dict[str, Any], focused: str, *, user: FakeUser | None = None,
        channel: FakeChannel | None = None,
    ) -> list[dict[str, Any]]:  # fmt: skip
        """Type into string option `focused` of "/name [group] [sub]" (its text so far in `options`): the choices
        the bot offers (an autocomplete interaction, answered with callback type 8). The text typed so far is not
        held to the option's limits, as Discord's client does not hold it before it is sent."""
        channel = channel or self.channel
        user = user or self.default_user
        others = {name: value for name, value in options.items() if name != focused}
        data = command_data(self, command, others, self.guild_of(channel))
        container = data
        while container.get("options") and container["options"][0]["type"] in (1, 2):
            container = container["options"][0]
        container.setdefault("options", []).append({"name": focused, "type": 3, "value": options[focused],
                                                    "focused": True})
        payload = interaction_payload(
            self, 4, data, user=user, channel=channel, roles=None, permissions=None, locale="en-US",
            attachment_size_limit=DEFAULT_ATTACHMENT_LIMIT,
        )  # fmt: skip
        handle = await self._send(payload, command, user, DEFAULT_ATTACHMENT_LIMIT)
        callback = await handle.wait_callback()
        assert callback["type"] == 8, f"an autocomplete answered with callback type {callback['type']}"
        return callback["data"]["choices"]

    async def click(
        self, message: FakeMessage | int, custom_id: str, *, user: FakeUser | None = None,
        values: list[str] | None = None, roles: list[Any] | None = None, permissions: int | None = None,
    ) -> InteractionHandle:  # fmt: skip
        """Press a button (or choose `values` in a select) on a message that exists in `fake.messages`."""
        message_id = message if isinstance(message, int) else message.id
        found = self.messages.get(message_id)
        if found is None or found.deleted:
            raise LookupError(f"no message {message_id} to click on (use fake.seed_message for pre-restart ones)")
        component = found.component(custom_id)
        if component is None or component.get("disabled"):
            raise ValueError(f"message {message_id} has no enabled {custom_id!r}; it has {found.custom_ids()}")
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": component["type"]}
        if component["type"] in SELECTS:
            data["values"] = list(values or [])
        user = user or self.default_user
        payload = interaction_payload(
            self, 3, data, user=user, channel=self.channels[found.channel_id], roles=roles, permissions=permissions,
            locale="en-US", attachment_size_limit=DEFAULT_ATTACHMENT_LIMIT,
        )  # fmt: skip
        payload["message"] = self.message_json(found)
        return await self._send(payload, custom_id, user, DEFAULT_ATTACHMENT_LIMIT, message_id=found.id)

    async def submit_modal(
        self, custom_id: str, values: dict[str, Any], *, user: FakeUser | None = None,
        shown_by: InteractionHandle | None = None,
    ) -> InteractionHandle:  # fmt: skip
        """Submit a modal the bot showed (callback type 9); values maps input custom_id -> text (or list)."""
        shown = [shown_by.record] if shown_by else reversed(self.interactions.values())
        origin = next((r for r in shown if r.callback_type == 9 and r.callback["data"]["custom_id"] == custom_id), None)
        if origin is None:
            raise LookupError(f"the bot never showed a modal {custom_id!r}")
        data = {"custom_id": custom_id, "components": modal_components(origin.callback["data"], values)}
        user = user or origin.user
        channel = self.channels[int(origin.payload["channel_id"])]
        payload = interaction_payload(
            self, 5, data, user=user, channel=channel, roles=None, permissions=None, locale="en-US",
            attachment_size_limit=origin.attachment_size_limit,
        )  # fmt: skip
        if origin.message_id is not None:
            payload["message"] = self.message_json(self.messages[origin.message_id])
        return await self._send(payload, custom_id, user, origin.attachment_size_limit, message_id=origin.message_id)

    async def _send(
        self, payload: dict[str, Any], name: str, user: FakeUser, limit: int, message_id: int | None = None
    ) -> InteractionHandle:
        record = InteractionRecord(
            int(payload["id"]), payload["token"], payload["type"], name, user, payload, self.now(), limit, message_id
        )
        self.interactions[record.id] = record
        self._by_token[record.token] = record
        await self.gateway.dispatch("INTERACTION_CREATE", payload)
        record.dispatched_at = self.now()  # the 3-second window starts when the bot can see it
        self.notify()
        return InteractionHandle(self, record)

    # -- waiting -------------------------------------------------------------------------------------------

    def notify(self) -> None:
        """Wake every waiter to re-check its predicate (called after each request and gateway event)."""
        self.watch.notify()

    async def wait_for(self, predicate: Callable[[], T], *, timeout: float = 10.0, what: str | None = None) -> T:
        """Return predicate()'s first truthy value; fail with a report of recent traffic after `timeout`,
        or at once if the fake crashed or the bot logged an unhandled exception."""
        return await self.watch.wait_for(predicate, timeout=timeout, what=what)

    async def wait_for_request(
        self, pattern: str, predicate: Callable[[RecordedRequest], bool] | None = None, *, timeout: float = 10.0
    ) -> RecordedRequest:
        def found() -> RecordedRequest | None:
            done = (r for r in self.requests_to(pattern) if r.status)
            return next((r for r in done if predicate is None or predicate(r)), None)

        return await self.wait_for(found, timeout=timeout, what=f"a request matching {pattern!r}")

    async def wait_for_message(
        self, predicate: Callable[[FakeMessage], bool], *, timeout: float = 10.0
    ) -> FakeMessage:
        def found() -> FakeMessage | None:
            return next((m for m in self.messages.values() if not m.deleted and predicate(m)), None)

        return await self.wait_for(found, timeout=timeout, what="a matching message")

    async def wait_connected(self, *, timeout: float = 10.0) -> None:
        """Until the bot holds an identified or resumed gateway session."""
        await self.wait_for(lambda: self.gateway.connected, timeout=timeout, what="a live gateway session")

    def check(self, what: str | None = None) -> None:
        """Raise for a crash in the fake, or an unhandled exception in the bot, that nothing has reported yet."""
        self.watch.check(what)

    @property
    def fail_on_bot_errors(self) -> bool:
        return self.watch.fail_on_bot_errors

    @fail_on_bot_errors.setter
    def fail_on_bot_errors(self, value: bool) -> None:
        self.watch.fail_on_bot_errors = value

    def describe(self, headline: str, last: int = 15) -> str:
        gw = self.gateway
        lines = [
            f"fake Discord: {headline}",
            f"gateway: connections={gw.connections} identifies={gw.identifies} resumes={gw.resumes} "
            f"connected={gw.connected}",
            f"last {min(last, len(self.requests))} of {len(self.requests)} requests:",
            *(f"  {r.summary()}" for r in self.requests[-last:]),
        ]
        if self.unhandled:
            lines.append(f"unhandled routes: {sorted({f'{r.method} {r.path}' for r in self.unhandled})}")
        return "\n".join(lines)

    # -- fault injection ------------------------------------------------------------------------------------

    def fail_next(self, pattern: str, status: int, *, code: int = 0, message: str = "", times: int = 1,
                  taken: bool = False) -> None:
        """The next `times` requests matching pattern ("METHOD /path" fnmatch) get this error; `taken`: each is done
        first (as Discord that posts an upload, then answers 5xx)."""
        self.faults.add(Fault(pattern, status, code, message or f"{status}: injected by the fake", times,
                              taken=taken))

    def hold_next(self, pattern: str) -> Hold:
        """The next request matching pattern is recorded, then left unanswered until the test sets the returned
        event; `hold.request` is that request once it came (see `wait_held`)."""
        hold = Hold(pattern)
        self._holds.append(hold)
        return hold

    async def wait_held(self, hold: Hold, *, timeout: float = 10.0) -> RecordedRequest:
        """The request `hold` caught, once it came (recorded, in flight, unanswered until `hold.set()`)."""
        return await self.wait_for(lambda: hold.request, timeout=timeout, what=f"a request to hold ({hold.pattern!r})")

    def drop_next(self, pattern: str) -> None:
        """The next request matching pattern is recorded, then its connection closed without an answer (as a
        connection lost during an upload: the client cannot know whether it was taken)."""
        self._drops.append(pattern)

    def dropped(self, rec: RecordedRequest) -> bool:
        """Whether `rec` is one `drop_next` named (once)."""
        for i, pattern in enumerate(self._drops):
            if rec.matches(pattern):
                del self._drops[i]
                return True
        return False

    async def wait_if_held(self, rec: RecordedRequest) -> None:
        """Hold a request that `hold_next` named until its release."""
        for i, hold in enumerate(self._holds):
            if rec.matches(hold.pattern):
                del self._holds[i]
                hold.request = rec
                self._holding.append(hold)
                self.notify()
                await hold.wait()
                return

    def rate_limit_next(
        self, pattern: str, *, times: int = 1, retry_after: float = 0.01, is_global: bool = False
    ) -> None:
        """The next `times` matching requests get 429 + Retry-After (discord.py sleeps retry_after and retries)."""
        self.faults.add(Fault(pattern, 429, 0, "You are being rate limited.", times, retry_after, is_global))

    def forget_faults(self) -> None:
        """Drop the injected errors, 429s, dropped connections and holds no request has met yet (say, those meant for
        a process killed since)."""
        self.faults.faults.clear()
        self._drops.clear()
        self._holds.clear()

    def set_rate_limit(self, pattern: str, requests: int, per: float) -> None:
        """Bucket size for matching routes (default 50 per 1 s); excess requests get a 429."""
        self.faults.limits.insert(0, (pattern, requests, per))

    def expire_token(self, interaction: InteractionHandle | int) -> None:
        """As after 15 minutes: the token's webhook routes answer 401 (50027), its callback 404 (10062)."""
        iid = interaction.id if isinstance(interaction, InteractionHandle) else interaction
        self.interactions[iid].expired = True

    async def reconnect(self) -> None:
        """Send op 7 RECONNECT; the bot RESUMEs on resume_gateway_url (see gateway.resumes)."""
        await self.gateway.reconnect()

    async def invalidate_session(self, *, resumable: bool = False) -> None:
        """Send op 9 INVALID_SESSION; unresumable means a fresh IDENTIFY (see Gateway.invalidate_session)."""
        await self.gateway.invalidate_session(resumable=resumable)

    async def disconnect(self, code: int = 4000) -> None:
        """Close the gateway socket from the server side with `code`."""
        await self.gateway.disconnect(code)

