"""The gateway: HELLO, heartbeats, IDENTIFY -> READY + GUILD_CREATE, RESUME with replay, and fault injection."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from .payloads import guild_create_payload, user_payload

if TYPE_CHECKING:
    from .server import FakeDiscord

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_MS = 41250


@dataclass
class Session:
    id: str
    shard: list[int] | None
    seq: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)  # every dispatch, for replay on RESUME
    invalidated: bool = False


class Gateway:
    """One bot session at a time (the fake serves one bot). Counters let tests assert reconnect behaviour."""

    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake
        self.connections = 0
        self.identifies = 0
        self.resumes = 0
        self.urls: list[str] = []  # path and query of each connection, e.g. "/gateway?v=10&encoding=json&..."
        self.received: list[dict[str, Any]] = []  # every payload the client sent, in order
        self.ack_heartbeats = True
        self.refused: list[int] = []  # HTTP statuses that answer the next handshakes instead (`refuse_handshakes`)
        self.session: Session | None = None
        self._live: web.WebSocketResponse | None = None  # the identified or resumed connection
        self._sockets: set[web.WebSocketResponse] = set()
        self._send_lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        return self._live is not None and not self._live.closed

    def install(self, app: web.Application) -> None:
        app.router.add_get("/gateway", self.handle)
        app.router.add_get("/gateway-resume", self.handle)  # READY's resume_gateway_url

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.refused:  # an outage behind a proxy: TCP answers, the WebSocket handshake fails with an HTTP error
            self.urls.append(str(request.rel_url))
            self.fake.notify()
            return web.Response(status=self.refused.pop(0), text="injected by the fake")
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        self.connections += 1
        self.urls.append(str(request.rel_url))
        self._sockets.add(ws)
        try:
            await self._send(ws, {"op": 10, "d": {"heartbeat_interval": HEARTBEAT_INTERVAL_MS}})
            async for message in ws:
                if message.type is WSMsgType.TEXT:
                    payload = json.loads(message.data)
                    self.received.append(payload)
                    await self._on_payload(ws, payload)
        finally:
            self._sockets.discard(ws)
            if self._live is ws:
                self._live = None
            self.fake.notify()
        return ws

    async def _on_payload(self, ws: web.WebSocketResponse, payload: dict[str, Any]) -> None:
        op, data = payload.get("op"), payload.get("d")
        if op == 1 and self.ack_heartbeats:
            await self._send(ws, {"op": 11})
        elif op == 2:
            await self._identify(ws, data)
        elif op == 6:
            await self._resume(ws, data)
        self.fake.notify()

    async def _identify(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> None:
        if data.get("token") != self.fake.token:
            await ws.close(code=4004, message=b"Authentication failed.")
            return
        self.identifies += 1
        fake = self.fake
        self.session = session = Session(id=secrets.token_hex(16), shard=data.get("shard"))
        ready = {
            "v": 10,
            "user": {**user_payload(fake.bot_user), "verified": True, "mfa_enabled": False},
            "guilds": [{"id": str(g.id), "unavailable": True} for g in fake.guilds],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": f"ws://127.0.0.1:{fake.port}/gateway-resume",
            "application": {"id": str(fake.app_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
            "user_settings": {},
            "_trace": ["fake-discord"],
        }
        if session.shard is not None:
            ready["shard"] = session.shard  # AutoShardedClient reads it unconditionally
        async with self._send_lock:  # nothing may slip in before the guilds have arrived
            await self._emit(ws, "READY", ready)
            for guild in fake.guilds:
                await self._emit(ws, "GUILD_CREATE", guild_create_payload(guild, fake.users, fake.started_at))
        self._live = ws

    async def _resume(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> None:
        self.resumes += 1
        session = self.session
        if (
            session is None
            or session.invalidated
            or data.get("session_id") != session.id
            or data.get("token") != self.fake.token
        ):
            await self._send(ws, {"op": 9, "d": False})
            return
        last_seen = data.get("seq") or 0
        async with self._send_lock:
            for event in session.events:
                if event["s"] > last_seen:
                    await self._send(ws, event)
            session.seq += 1
            await self._send(ws, {"op": 0, "t": "RESUMED", "s": session.seq, "d": {"_trace": ["fake-discord"]}})
        self._live = ws

    async def dispatch(self, event: str, data: dict[str, Any], *, timeout: float = 10.0) -> None:
        """Send a DISPATCH (op 0) on the live session, waiting for the bot to (re)connect if need be."""
        await self.fake.wait_for(lambda: self.connected, timeout=timeout, what=f"a gateway session to send {event}")
        async with self._send_lock:
            await self._emit(self._live, event, data)

    async def _emit(self, ws: web.WebSocketResponse | None, event: str, data: dict[str, Any]) -> None:
        session = self.session
        assert session is not None
        session.seq += 1
        frame = {"op": 0, "t": event, "s": session.seq, "d": data}
        session.events.append(frame)
        if ws is not None and not ws.closed:  # otherwise it is replayed when the client RESUMEs
            await self._send(ws, frame)

    async def _send(self, ws: web.WebSocketResponse, payload: dict[str, Any]) -> None:
        # Plain text frames: discord.py decompresses only binary frames, so compress=zlib-stream can be ignored.
        await ws.send_str(json.dumps(payload))

    # -- fault injection ---------------------------------------------------------------------------------

    def refuse_handshakes(self, status: int, times: int = 1) -> None:
        """Answer the next `times` connections' WebSocket handshakes with HTTP `status` (a 503 of a proxy in front
        of a gateway that is down, say); each is recorded in `urls`, none counts in `connections`."""
        self.refused.extend([status] * times)

    async def reconnect(self) -> None:
        """Op 7 RECONNECT: the client closes and RESUMEs on resume_gateway_url."""
        await self._send(self._require_live(), {"op": 7, "d": None})

    async def invalidate_session(self, *, resumable: bool = False) -> None:
        """Op 9 INVALID_SESSION: with resumable=False the client must IDENTIFY afresh (new session, READY).

        discord.Client.before_identify_hook sleeps 5 s before every re-IDENTIFY; override it in the bot under
        test if that wait matters.
        """
        if not resumable and self.session is not None:
            self.session.invalidated = True
        await self._send(self._require_live(), {"op": 9, "d": resumable})

    async def disconnect(self, code: int = 4000) -> None:
        """Close the socket from the server side; discord.py resumes after codes it can handle (e.g. 4000)."""
        await self._require_live().close(code=code)

    def _require_live(self) -> web.WebSocketResponse:
        if self._live is None or self._live.closed:
            raise AssertionError("no live gateway connection: is the bot connected?")
        return self._live

    async def close(self) -> None:
        for ws in list(self._sockets):
            await ws.close(code=1001, message=b"fake Discord shutting down")
