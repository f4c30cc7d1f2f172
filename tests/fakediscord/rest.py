"""The REST side: a recording middleware, login and gateway discovery, command sync, channels, attachments."""

from __future__ import annotations

import logging
import re
import traceback
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .messages import MessageRoutes
from .payloads import FakeChannel, application_payload, channel_payload, user_payload
from .records import RecordedRequest
from .wire import RECORD, ApiError, error_response, json_response, read_body

if TYPE_CHECKING:
    from .server import FakeDiscord

log = logging.getLogger(__name__)

API = "/api/v10"
NAME = re.compile(r"^[-_'\w]{1,32}$")
UNAUTHENTICATED = ("/webhooks/", "/interactions/")  # the interaction token is the credential there


class RestAPI:
    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake

    def install(self, app: web.Application) -> None:
        app.middlewares.append(self.middleware)
        commands = API + "/applications/{application_id}/commands"
        guild_commands = API + "/applications/{application_id}/guilds/{guild_id}/commands"
        app.add_routes([
            web.get(API + "/users/@me", self.get_me, allow_head=False),
            web.get(API + "/oauth2/applications/@me", self.get_application, allow_head=False),
            web.get(API + "/gateway", self.get_gateway, allow_head=False),
            web.get(API + "/gateway/bot", self.get_gateway_bot, allow_head=False),
            web.put(commands, self.put_commands),
            web.get(commands, self.get_commands, allow_head=False),
            web.put(guild_commands, self.put_commands),
            web.get(guild_commands, self.get_commands, allow_head=False),
            web.get(API + "/channels/{channel_id}", self.get_channel, allow_head=False),
            web.post(API + "/users/@me/channels", self.create_dm),
            web.delete(API + "/users/@me/guilds/{guild_id}", self.leave_guild),
            *MessageRoutes(self.fake).routes(API),
            web.get("/attachments/{channel_id}/{attachment_id}/{filename}", self.get_attachment, allow_head=False),
            web.route("*", API + "/{tail:.*}", self.unknown_route),
        ])  # fmt: skip

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if not request.path.startswith(API + "/"):
            return await handler(request)
        fake = self.fake
        rec, parse_error = await self._record(request)
        try:
            if parse_error is not None:
                raise parse_error
            await fake.wait_if_held(rec)
            if fake.dropped(rec):
                assert request.transport is not None
                request.transport.close()  # the client reads a closed connection, no answer
                rec.status = 0  # recorded as unanswered; the response below is never sent
                fake.notify()
                return web.Response(status=499)
            response = self._refusal(request, rec) or await handler(request)
            if 200 <= response.status < 300:  # done, yet an error may be the answer (Discord took an upload, then 5xx)
                response = fake.faults.injected(rec, taken=True) or response
        except ApiError as error:
            response = error_response(error)
        except Exception as error:  # a bug in the fake: make the waiting test fail with this traceback
            log.exception("fake Discord crashed on %s %s", rec.method, rec.path)
            fake.server_errors.append(f"{rec.method} {rec.path}\n{traceback.format_exc()}")
            response = error_response(ApiError(400, 0, f"fake Discord crashed: {error!r}"))
        if response.status != 429:
            response.headers.update(fake.faults.headers(rec, dict(request.match_info)))
        rec.status = response.status
        fake.notify()
        return response

    async def _record(self, request: web.Request) -> tuple[RecordedRequest, ApiError | None]:
        try:
            body, files = await read_body(request)
            parse_error = None
        except ApiError as error:
            body, files, parse_error = None, [], error
        canonical = request.match_info.route.resource.canonical if request.match_info.route.resource else None
        route = None if canonical is None or canonical.endswith("{tail}") else canonical.removeprefix(API)
        path = request.path.removeprefix(API)
        rec = RecordedRequest(request.method, path, route, dict(request.query), body, files, self.fake.now())
        self.fake.requests.append(rec)
        request[RECORD] = rec
        return rec, parse_error

    def _refusal(self, request: web.Request, rec: RecordedRequest) -> web.Response | None:
        injected = self.fake.faults.injected(rec)
        if injected is not None:
            return injected
        authorized = request.headers.get("Authorization") == f"Bot {self.fake.token}"
        if not (authorized or rec.path.startswith(UNAUTHENTICATED)):
            return error_response(ApiError(401, 0, "401: Unauthorized"))
        return self.fake.faults.enforce(rec, dict(request.match_info))

    async def unknown_route(self, request: web.Request) -> web.Response:
        self.fake.unhandled.append(request[RECORD])
        raise ApiError(404, 0, "404: Not Found")

    # -- login and gateway discovery -------------------------------------------------------------------------

    async def get_me(self, request: web.Request) -> web.Response:
        me = user_payload(self.fake.bot_user)
        return json_response({**me, "verified": True, "mfa_enabled": False, "locale": "en-US", "email": None})

    async def get_application(self, request: web.Request) -> web.Response:
        fake = self.fake
        return json_response(application_payload(fake.app_id, fake.bot_user, fake.owner))

    async def get_gateway(self, request: web.Request) -> web.Response:
        return json_response({"url": self.fake.gateway_url})

    async def get_gateway_bot(self, request: web.Request) -> web.Response:
        limit = {"total": 1000, "remaining": 999, "reset_after": 14_400_000, "max_concurrency": 1}
        return json_response({"url": self.fake.gateway_url, "shards": 1, "session_start_limit": limit})

    # -- application commands ------------------------------------------------------------------------------

    def _command_list(self, request: web.Request) -> tuple[int | None, list[dict[str, Any]]]:
        if request.match_info["application_id"] != str(self.fake.app_id):
            raise ApiError(403, 50001, "Missing Access")
        guild_id = request.match_info.get("guild_id")
        if guild_id is None:
            return None, self.fake.commands
        if not any(str(g.id) == guild_id for g in self.fake.guilds):
            raise ApiError(403, 50001, "Missing Access")
        return int(guild_id), self.fake.guild_commands.setdefault(int(guild_id), [])

    async def get_commands(self, request: web.Request) -> web.Response:
        return json_response(self._command_list(request)[1])

    async def put_commands(self, request: web.Request) -> web.Response:
        """Bulk overwrite, as tree.sync() does: ids survive for commands whose (name, type) is unchanged."""
        guild_id, current = self._command_list(request)
        body = request[RECORD].json
        if not isinstance(body, list) or len(body) > 100:
            raise ApiError(400, 50035, "Invalid Form Body: expected a list of at most 100 commands")
        for n, command in enumerate(body):
            _validate_command(command, f"{n}")
        ids = {(c["name"], c.get("type", 1)): c["id"] for c in current}
        stored = []
        for command in body:
            key = (command["name"], command.get("type", 1))
            item = {
                "default_member_permissions": None,
                "nsfw": False,
                "options": [],
                **command,
                "id": ids.get(key) or str(self.fake.ids.next()),
                "application_id": str(self.fake.app_id),
                "version": str(self.fake.ids.next()),
                "type": key[1],
            }
            if guild_id is not None:
                item["guild_id"] = str(guild_id)
            stored.append(item)
        current[:] = stored
        return json_response(stored)

    # -- channels and attachments -------------------------------------------------------------------------

    async def get_channel(self, request: web.Request) -> web.Response:
        channel = self.fake.channels.get(int(request.match_info["channel_id"]))
        if channel is None:
            raise ApiError(404, 10003, "Unknown Channel")
        if channel.id in self.fake.hidden:
            raise ApiError(403, 50001, "Missing Access")
        return json_response(channel_payload(channel))

    async def create_dm(self, request: web.Request) -> web.Response:
        recipient = int((request[RECORD].json or {}).get("recipient_id", 0))
        if recipient not in self.fake.users:
            raise ApiError(400, 50035, f"Invalid Form Body: recipient_id: unknown user {recipient}")
        channel: FakeChannel = self.fake.dm_channel(self.fake.users[recipient])
        return json_response(channel_payload(channel))

    async def leave_guild(self, request: web.Request) -> web.Response:
        """The bot leaves a guild: 204, then GUILD_DELETE on the gateway (no "unavailable": it was removed)."""
        guild = self.fake.leave(int(request.match_info["guild_id"]))
        if guild is None:
            raise ApiError(404, 10004, "Unknown Guild")
        await self.fake.gateway.dispatch("GUILD_DELETE", {"id": str(guild.id)})
        return web.Response(status=204)

    async def get_attachment(self, request: web.Request) -> web.Response:
        wanted = request.match_info["attachment_id"]
        for message in self.fake.messages.values():
            for attachment in message.attachments:
                if str(attachment.id) == wanted:
                    return web.Response(body=attachment.data, headers={"Content-Type": attachment.content_type})
        raise web.HTTPNotFound()


def _validate_command(command: dict[str, Any], where: str) -> None:
    """The subset of Discord's definition checks that a bot can trip over (application-commands.mdx)."""

    def fail(path: str, problem: str) -> None:
        raise ApiError(400, 50035, f"Invalid Form Body: {path}: {problem}")

    name, kind = command.get("name", ""), command.get("type", 1)
    if not NAME.match(name) or (kind in (1, None) and name != name.lower()):
        fail(f"{where}.name", f"invalid command name {name!r}")
    if kind == 1 and not 1 <= len(command.get("description", "")) <= 100:
        fail(f"{where}.description", "must be between 1 and 100 characters")
    options = command.get("options") or []
    if len(options) > 25:
        fail(f"{where}.options", "must be 25 or fewer in length")
    seen_optional = False
    for n, option in enumerate(options):
        path = f"{where}.options.{n}"
        if option.get("type") in (1, 2):
            _validate_command({**option, "type": 1}, path)
            continue
        if not NAME.match(option.get("name", "")) or option["name"] != option["name"].lower():
            fail(f"{path}.name", f"invalid option name {option.get('name')!r}")
        if not 1 <= len(option.get("description", "")) <= 100:
            fail(f"{path}.description", "must be between 1 and 100 characters")
        if option.get("required") and seen_optional:
            fail(f"{path}.required", "required options must be placed before non-required options")
        seen_optional = seen_optional or not option.get("required")
        choices = option.get("choices") or []
        if len(choices) > 25:
            fail(f"{path}.choices", "must be 25 or fewer in length")
        if any(isinstance(c["value"], str) and len(c["value"]) > 100 for c in choices):
            fail(f"{path}.choices", "string values must be 100 or fewer in length")
