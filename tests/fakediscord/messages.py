"""Message routes: interaction callbacks, interaction webhooks (original response, followups), channel messages."""

from __future__ import annotations

import mimetypes
import re
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .records import EPHEMERAL, LOADING, FakeMessage, InteractionRecord, StoredAttachment, UploadedFile
from .wire import RECORD, ApiError, json_response

if TYPE_CHECKING:
    from .server import FakeDiscord

MESSAGE_FIELDS = ("content", "embeds", "components", "attachments", "flags")
SETTABLE_FLAGS = 1 << 2 | EPHEMERAL | 1 << 12 | 1 << 15  # suppress embeds, ephemeral, silent, components v2
TRUE = ("1", "true", "True")


class MessageRoutes:
    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake

    def routes(self, prefix: str) -> list[web.RouteDef]:
        webhook = prefix + "/webhooks/{application_id}/{token}"
        channel = prefix + "/channels/{channel_id}"
        return [
            web.post(prefix + "/interactions/{interaction_id}/{token}/callback", self.callback),
            web.post(webhook, self.followup),
            web.get(webhook + "/messages/{message_id}", self.get_webhook_message, allow_head=False),
            web.patch(webhook + "/messages/{message_id}", self.edit_webhook_message),
            web.delete(webhook + "/messages/{message_id}", self.delete_webhook_message),
            web.post(channel + "/messages", self.create_channel_message),
            web.get(channel + "/messages", self.channel_history, allow_head=False),
            web.get(channel + "/messages/{message_id}", self.get_channel_message, allow_head=False),
            web.patch(channel + "/messages/{message_id}", self.edit_channel_message),
            web.delete(channel + "/messages/{message_id}", self.delete_channel_message),
            web.post(channel + "/typing", self.typing),
        ]

    # -- interaction callback ----------------------------------------------------------------------------

    async def callback(self, request: web.Request) -> web.Response:
        fake, rec = self.fake, request[RECORD]
        inter = fake.interactions.get(int(request.match_info["interaction_id"]))
        deadline = fake.callback_deadline
        if (
            inter is None
            or inter.token != request.match_info["token"]
            or inter.expired
            or (deadline is not None and fake.now() - inter.dispatched_at > deadline)
        ):
            raise ApiError(404, 10062, "Unknown interaction")
        if inter.acknowledged:
            raise ApiError(400, 40060, "Interaction has already been acknowledged.")
        body = rec.json or {}
        kind, data = body.get("type"), body.get("data") or {}
        self._check_sizes(rec.files, inter.attachment_size_limit)
        message = self._callback_effect(inter, kind, data, rec.files)
        inter.callbacks.append(body)
        inter.callback_at = fake.now()
        if request.query.get("with_response") not in TRUE:
            return web.Response(status=204)
        return json_response(self._callback_response(inter, kind, message))

    def _callback_effect(
        self, inter: InteractionRecord, kind: Any, data: dict[str, Any], files: list[UploadedFile]
    ) -> FakeMessage | None:
        if kind == 4:
            message = self._create_for(inter, "original", data, files)
            inter.original_id = message.id
            return message
        if kind == 5:
            placeholder = {"content": "", "flags": (data.get("flags") or 0) & EPHEMERAL}
            message = self._create_for(inter, "original", placeholder, [], loading=True)
            inter.original_id = message.id
            return message
        if kind in (6, 7):
            if inter.message_id is None:
                raise ApiError(400, 50035, f"Invalid Form Body: callback type {kind} needs a component interaction")
            message = self.fake.messages[inter.message_id]
            if kind == 7 and message.deleted:  # deleted by hand while the press was on its way (a stale copy)
                raise ApiError(404, 10008, "Unknown Message")
            inter.original_id = inter.message_id
            if kind == 7:
                self._edit(message, data, files)
            return message
        if (kind == 8 and inter.type == 4) or (kind == 9 and inter.type in (2, 3)):
            if kind == 9 and not {"custom_id", "title", "components"} <= data.keys():
                raise ApiError(400, 50035, "Invalid Form Body: a modal needs custom_id, title and components")
            return None
        raise ApiError(400, 50035, f"Invalid Form Body: callback type {kind} for interaction type {inter.type}")

    def _callback_response(self, inter: InteractionRecord, kind: int, message: FakeMessage | None) -> dict[str, Any]:
        resource: dict[str, Any] = {"type": kind}
        if message is not None and kind in (4, 5, 7):
            resource["message"] = self.fake.message_json(message)
        return {
            "interaction": {
                "id": str(inter.id),
                "type": inter.type,
                "response_message_id": str(message.id) if message else None,
                "response_message_loading": kind == 5,
                "response_message_ephemeral": bool(message and message.ephemeral),
            },
            "resource": resource,
        }

    # -- interaction webhook ----------------------------------------------------------------------------

    def _token_interaction(self, request: web.Request) -> InteractionRecord:
        if request.match_info["application_id"] != str(self.fake.app_id):
            raise ApiError(404, 10015, "Unknown Webhook")
        inter = self.fake.token_interaction(request.match_info["token"])
        if inter is None or inter.expired:
            raise ApiError(401, 50027, "Invalid Webhook Token")
        return inter

    def _webhook_message(self, request: web.Request) -> tuple[InteractionRecord, FakeMessage]:
        inter = self._token_interaction(request)
        ref = request.match_info["message_id"]
        mid = inter.original_id if ref == "@original" else int(ref) if ref.isdigit() else None
        owned = mid is not None and (mid == inter.original_id or mid in inter.followup_ids)
        message = self.fake.messages.get(mid) if owned else None  # type: ignore[arg-type]
        if message is None or message.deleted:
            raise ApiError(404, 10008, "Unknown Message")
        return inter, message

    async def followup(self, request: web.Request) -> web.Response:
        inter = self._token_interaction(request)
        if not inter.acknowledged:
            raise ApiError(404, 10015, "Unknown Webhook")
        rec = request[RECORD]
        self._check_sizes(rec.files, inter.attachment_size_limit)
        payload = rec.json or {}
        original = self.fake.messages.get(inter.original_id) if inter.callback_type == 5 else None
        if original is not None and original.loading and not original.deleted and not inter.followup_ids:
            # The first followup after a "thinking" defer replaces the placeholder and keeps its ephemerality; once
            # the placeholder is deleted, a followup is a message of its own, ephemeral when its flags say so.
            message = self._edit(original, payload, rec.files)
        else:
            message = self._create_for(inter, "followup", payload, rec.files)
        inter.followup_ids.append(message.id)
        if request.query.get("wait") in TRUE:
            return json_response(self.fake.message_json(message))
        return web.Response(status=204)

    async def get_webhook_message(self, request: web.Request) -> web.Response:
        _, message = self._webhook_message(request)
        return json_response(self.fake.message_json(message))

    async def edit_webhook_message(self, request: web.Request) -> web.Response:
        inter, message = self._webhook_message(request)
        rec = request[RECORD]
        self._check_sizes(rec.files, inter.attachment_size_limit)
        return json_response(self.fake.message_json(self._edit(message, rec.json or {}, rec.files)))

    async def delete_webhook_message(self, request: web.Request) -> web.Response:
        _, message = self._webhook_message(request)
        message.deleted = True
        return web.Response(status=204)

    # -- channel messages (bot token) -----------------------------------------------------------------------

    def _channel(self, request: web.Request) -> int:
        """The id of the request's channel: 404 (10003) once it is deleted, 403 (50001) while the bot cannot see it."""
        channel = self.fake.channels.get(int(request.match_info["channel_id"]))
        if channel is None:
            raise ApiError(404, 10003, "Unknown Channel")
        if channel.id in self.fake.hidden:
            raise ApiError(403, 50001, "Missing Access")
        return channel.id

    def _channel_message(self, request: web.Request) -> FakeMessage:
        self._channel(request)
        ref = request.match_info["message_id"]
        message = self.fake.messages.get(int(ref)) if ref.isdigit() else None
        if (
            message is None
            or message.deleted
            or message.ephemeral  # ephemeral messages exist only behind the interaction token
            or str(message.channel_id) != request.match_info["channel_id"]
        ):
            raise ApiError(404, 10008, "Unknown Message")
        return message

    async def create_channel_message(self, request: web.Request) -> web.Response:
        fake, rec = self.fake, request[RECORD]
        channel = fake.channels[self._channel(request)]
        self._check_sizes(rec.files, fake.max_attachment_size)
        payload = dict(rec.json or {})
        payload["flags"] = (payload.get("flags") or 0) & ~EPHEMERAL
        message = self._create(channel.id, channel.guild_id, "channel", payload, rec.files)
        return json_response(fake.message_json(message))

    async def channel_history(self, request: web.Request) -> web.Response:
        """A channel's messages, newest first, as Discord lists them: the `limit` (1-100, default 50) newest before
        `before`, or the `limit` oldest after `after`."""
        fake, query = self.fake, request.query
        channel = fake.channels[self._channel(request)]
        if channel.id in fake.history_denied:
            return json_response([])
        limit = int(query.get("limit", 50))
        if not 1 <= limit <= 100:
            raise ApiError(400, 50035, "Invalid Form Body: limit")
        shown = [message for message in fake.messages.values()
                 if message.channel_id == channel.id and not message.deleted and not message.ephemeral]
        if "after" in query:
            shown = sorted((m for m in shown if m.id > int(query["after"])), key=lambda m: m.id)[:limit]
        else:
            before = int(query["before"]) if "before" in query else None
            shown = sorted((m for m in shown if before is None or m.id < before), key=lambda m: m.id)[-limit:]
        return json_response([fake.message_json(message) for message in reversed(shown)])

    async def get_channel_message(self, request: web.Request) -> web.Response:
        message = self._channel_message(request)
        if message.channel_id in self.fake.history_denied:
            raise ApiError(403, 50013, "Missing Permissions")
        return json_response(self.fake.message_json(message))

    async def edit_channel_message(self, request: web.Request) -> web.Response:
        message, rec = self._channel_message(request), request[RECORD]
        if message.author is not self.fake.bot_user:
            raise ApiError(403, 50005, "Cannot edit a message authored by another user")
        self._check_sizes(rec.files, self.fake.max_attachment_size)
        return json_response(self.fake.message_json(self._edit(message, rec.json or {}, rec.files)))

    async def delete_channel_message(self, request: web.Request) -> web.Response:
        self._channel_message(request).deleted = True
        return web.Response(status=204)

    async def typing(self, request: web.Request) -> web.Response:
        return web.Response(status=204)

    # -- message state ------------------------------------------------------------------------------------

    def _create_for(
        self, inter: InteractionRecord, kind: str, payload: dict[str, Any], files: list[UploadedFile],
        *, loading: bool = False,
    ) -> FakeMessage:  # fmt: skip
        guild_id = inter.payload.get("guild_id")
        message = self._create(
            int(inter.payload["channel_id"]), int(guild_id) if guild_id else None, kind, payload, files,
            allow_empty=loading,
        )  # fmt: skip
        message.webhook_id = self.fake.app_id
        message.interaction_id = inter.id
        message.type = 20 if kind == "original" and inter.type == 2 else 0
        if loading:
            message.flags |= LOADING
        return message

    def _create(
        self, channel_id: int, guild_id: int | None, kind: str, payload: dict[str, Any], files: list[UploadedFile],
        *, allow_empty: bool = False,
    ) -> FakeMessage:  # fmt: skip
        fake = self.fake
        message = FakeMessage(fake.ids.next(), channel_id, guild_id, fake.bot_user, kind, created_at=fake.wall_time())
        self._apply(message, payload, files, creating=True, allow_empty=allow_empty)
        fake.messages[message.id] = message
        return message

    def _edit(self, message: FakeMessage, payload: dict[str, Any], files: list[UploadedFile]) -> FakeMessage:
        before = message.snapshot()
        self._apply(message, payload, files, creating=False)
        message.history.append(before)
        message.edited_at = self.fake.wall_time()
        message.flags &= ~LOADING
        return message

    def _apply(
        self, message: FakeMessage, payload: dict[str, Any], files: list[UploadedFile],
        *, creating: bool, allow_empty: bool = False,
    ) -> None:  # fmt: skip
        """Validate, then apply, the fields of a create or an edit (absent fields are kept on edit)."""
        content = (payload.get("content") or "") if "content" in payload else message.content
        embeds = (payload.get("embeds") or []) if "embeds" in payload else message.embeds
        components = (payload.get("components") or []) if "components" in payload else message.components
        flags = message.flags
        if payload.get("flags") is not None:  # ephemerality is fixed when a message is created
            settable = SETTABLE_FLAGS if creating else SETTABLE_FLAGS & ~EPHEMERAL
            flags = payload["flags"] & settable | (0 if creating else message.flags & EPHEMERAL)
        attachments = self._attachments(message.attachments, payload.get("attachments"), files, creating)
        if len(content) > 2000:
            raise ApiError(400, 50035, "Invalid Form Body: content: Must be 2000 or fewer in length.")
        if len(embeds) > 10:
            raise ApiError(400, 50035, "Invalid Form Body: embeds: Must be 10 or fewer in length.")
        if not (allow_empty or content or embeds or components or attachments or "poll" in payload):
            raise ApiError(400, 50006, "Cannot send an empty message")
        message.content, message.embeds, message.components = content, embeds, components
        message.flags, message.attachments = flags, attachments
        message.extra.update({k: v for k, v in payload.items() if k not in MESSAGE_FIELDS})

    def _attachments(
        self, current: list[StoredAttachment], spec: list[dict[str, Any]] | None, files: list[UploadedFile],
        creating: bool,
    ) -> list[StoredAttachment]:  # fmt: skip
        """Discord's rule: `attachments` lists what to keep (by id) and names new files (by files[N] index)."""
        uploads = {_index(f, i): f for i, f in enumerate(files)}
        if spec is None:
            kept = [] if creating else list(current)
            return kept + [self._store(f, None, None) for f in uploads.values()]
        result, used = [], set()
        for n, item in enumerate(spec):
            ref = str(item.get("id"))
            existing = next((a for a in current if str(a.id) == ref), None)
            if existing is not None and not creating:
                result.append(existing)
            elif ref.isdigit() and int(ref) in uploads:
                used.add(int(ref))
                result.append(self._store(uploads[int(ref)], item.get("filename"), item.get("description")))
            else:
                raise ApiError(400, 50035, f"Invalid Form Body: attachments.{n}.id: unknown attachment {ref}")
        return result + [self._store(f, None, None) for i, f in uploads.items() if i not in used]

    def _store(self, upload: UploadedFile, filename: str | None, description: str | None) -> StoredAttachment:
        name = filename or upload.filename
        guessed = mimetypes.guess_type(name)[0]
        content_type = guessed if upload.content_type == "application/octet-stream" and guessed else upload.content_type
        return StoredAttachment(self.fake.ids.next(), name, content_type, upload.data, description)

    @staticmethod
    def _check_sizes(files: list[UploadedFile], limit: int) -> None:
        if any(f.size > limit for f in files):
            raise ApiError(413, 40005, "Request entity too large")


def _index(upload: UploadedFile, position: int) -> int:
    found = re.fullmatch(r"files\[(\d+)\]", upload.field)
    return int(found.group(1)) if found else position
