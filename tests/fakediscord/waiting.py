"""Waiting without sleeps: every change wakes the waiters, and a crash anywhere fails them at once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Watch:
    """Waiters re-check their predicate after each notify(); errors that nothing has reported fail them fast."""

    def __init__(self, describe: Callable[[str], str]) -> None:
        self.describe = describe  # renders a headline plus recent traffic, for failure messages
        self.server_errors: list[str] = []  # tracebacks of bugs in the fake itself
        self.bot_errors: list[logging.LogRecord] = []  # ERROR records from the "discord" loggers
        self.fail_on_bot_errors = True  # fail at once when discord.py logs "Ignoring exception ..."
        self._changed = asyncio.Event()
        self._reported = {"server": 0, "bot": 0}
        self._handler: _ErrorCollector | None = None

    def notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for(self, predicate: Callable[[], T], *, timeout: float, what: str | None) -> T:
        try:
            async with asyncio.timeout(timeout):
                while True:
                    self.check(what)
                    changed = self._changed
                    result = predicate()
                    if result:
                        return result
                    await changed.wait()
        except TimeoutError:
            headline = f"timed out after {timeout} s waiting for {what or predicate}"
            raise AssertionError(self.describe(headline)) from None

    def check(self, what: str | None = None) -> None:
        if len(self.server_errors) > self._reported["server"]:
            self._reported["server"] = len(self.server_errors)
            raise AssertionError(f"the fake crashed (waiting for {what}):\n{self.server_errors[-1]}")
        if not self.fail_on_bot_errors:
            return
        fresh = self.bot_errors[self._reported["bot"] :]
        self._reported["bot"] = len(self.bot_errors)
        for record in fresh:
            if record.getMessage().startswith("Ignoring exception"):
                text = logging.Formatter().format(record)
                raise AssertionError(self.describe(f"the bot failed (waiting for {what}):\n{text}"))

    def attach(self) -> None:
        self._handler = _ErrorCollector(self)
        logging.getLogger("discord").addHandler(self._handler)

    def detach(self) -> None:
        if self._handler is not None:
            logging.getLogger("discord").removeHandler(self._handler)
            self._handler = None


class _ErrorCollector(logging.Handler):
    """Collects discord.py's ERROR records (unhandled exceptions in commands, views, events)."""

    def __init__(self, watch: Watch) -> None:
        super().__init__(logging.ERROR)
        self.watch = watch
        self.loop = asyncio.get_running_loop()

    def emit(self, record: logging.LogRecord) -> None:
        self.watch.bot_errors.append(record)
        try:
            same_loop = asyncio.get_running_loop() is self.loop
        except RuntimeError:  # logged from a thread (discord.py's heartbeat thread logs)
            same_loop = False
        if same_loop:
            self.watch.notify()
        elif not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.watch.notify)
