"""Rate-limit buckets with realistic X-RateLimit-* headers, injected REST failures, and requests held unanswered."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from .records import RecordedRequest
from .wire import json_response

MAJOR_PARAMETERS = ("channel_id", "guild_id", "interaction_id", "token")


@dataclass
class Fault:
    pattern: str  # fnmatch over "METHOD /path"
    status: int
    code: int
    message: str
    remaining: int
    retry_after: float = 0.0
    is_global: bool = False
    taken: bool = False  # the request is done first (a message posted), then answered with the error


class Hold(asyncio.Event):
    """The gate `FakeDiscord.hold_next` sets up: the next request matching `pattern` is recorded, then left
    unanswered (in flight, as on a slow Discord) until the test calls `set()`. No timer opens it, so whatever the test
    does meanwhile happens before the answer, however loaded the machine."""

    def __init__(self, pattern: str) -> None:
        super().__init__()
        self.pattern = pattern  # fnmatch over "METHOD /path"
        self.request: RecordedRequest | None = None  # the request it holds, once one came

    def __repr__(self) -> str:
        state = "released" if self.is_set() else "held" if self.request is not None else "waiting"
        return f"<Hold {self.pattern!r} {state}>"


@dataclass
class _Window:
    resets_at: float  # on the clock given to Faults
    used: int = 0


class Faults:
    """Decides, before a handler runs, whether a request is refused; adds rate-limit headers to every answer."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._now = clock
        self.faults: list[Fault] = []
        self.limits: list[tuple[str, int, float]] = []  # (pattern, requests, per seconds), first match wins
        self.default_limit = (50, 1.0)  # generous: tests rarely want discord.py's pre-emptive waits
        self._windows: dict[tuple[str, ...], _Window] = {}

    def add(self, fault: Fault) -> None:
        self.faults.append(fault)

    def injected(self, rec: RecordedRequest, *, taken: bool = False) -> web.Response | None:
        """The error for `rec`, if one is due: before the request is done, or (`taken`) after it was."""
        for fault in self.faults:
            if fault.remaining > 0 and fault.taken is taken and rec.matches(fault.pattern):
                fault.remaining -= 1
                if fault.status == 429:
                    return self._too_many(rec, fault.retry_after, is_global=fault.is_global)
                return json_response({"message": fault.message, "code": fault.code}, status=fault.status)
        return None

    def enforce(self, rec: RecordedRequest, match_info: dict[str, str]) -> web.Response | None:
        """Count the request in its bucket; answer 429 if the bucket is already spent."""
        window = self._window(rec, match_info)
        limit, _ = self._limit(rec)
        window.used += 1
        if window.used > limit:
            return self._too_many(rec, max(window.resets_at - self._now(), 0.001), is_global=False)
        return None

    def headers(self, rec: RecordedRequest, match_info: dict[str, str]) -> dict[str, str]:
        window = self._window(rec, match_info)
        limit, _ = self._limit(rec)
        reset_after = max(window.resets_at - self._now(), 0.0)
        return {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(max(limit - window.used, 0)),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": self._bucket_hash(rec),
        }

    def _limit(self, rec: RecordedRequest) -> tuple[int, float]:
        for pattern, requests, per in self.limits:
            if rec.matches(pattern):
                return requests, per
        return self.default_limit

    def _window(self, rec: RecordedRequest, match_info: dict[str, str]) -> _Window:
        major = tuple(match_info.get(name, "") for name in MAJOR_PARAMETERS)
        key = (self._bucket_hash(rec), *major)
        now = self._now()
        window = self._windows.get(key)
        if window is None or now >= window.resets_at:
            window = self._windows[key] = _Window(resets_at=now + self._limit(rec)[1])
        return window

    @staticmethod
    def _bucket_hash(rec: RecordedRequest) -> str:
        return hashlib.sha1(f"{rec.method} {rec.route}".encode()).hexdigest()[:16]

    def _too_many(self, rec: RecordedRequest, retry_after: float, *, is_global: bool) -> web.Response:
        headers = {
            "Retry-After": f"{retry_after:.3f}",
            "Via": "1.1 google",  # without it discord.py assumes a Cloudflare ban and does not retry
            "X-RateLimit-Limit": str(self._limit(rec)[0]),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}",
            "X-RateLimit-Reset-After": f"{retry_after:.3f}",
            "X-RateLimit-Scope": "global" if is_global else "user",
            "X-RateLimit-Bucket": self._bucket_hash(rec),
        }
        if is_global:
            headers["X-RateLimit-Global"] = "true"
        body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": is_global}
        return json_response(body, status=429, headers=headers)
