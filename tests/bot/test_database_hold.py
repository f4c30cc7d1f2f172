"""The running bot checks that its database is still its own: a lock a lost session took with it is taken again
(storage.Hold, tested on PostgreSQL in tests/storage/test_connection.py), and a database another bot took stops it."""

from __future__ import annotations

import asyncio

from bot.app import HOLD_CHECK_S, keep_hold
from storage import DatabaseInUse, DatabaseUnreachable
from tests.bot.helpers import WAIT, Timers


class ScriptedHold:
    """A hold whose checks answer, in turn, what the test lists: True, False (taken again) or an error to raise."""

    def __init__(self, *answers: bool | Exception) -> None:
        self.answers = list(answers)
        self.checks = 0

    async def check(self) -> bool:
        self.checks += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


async def test_the_hold_is_checked_every_minute_and_a_database_out_of_reach_is_tried_again(caplog):
    caplog.set_level("WARNING", logger="bot.app")
    timers, taken = Timers(), []
    hold = ScriptedHold(True, DatabaseUnreachable("connection refused"), False, True, True)
    watch = asyncio.create_task(keep_hold(hold, taken.append, timers.sleep))  # type: ignore[arg-type]
    for _ in range(5):  # the fifth wait is armed only once the fourth check went on
        assert await timers.fire() == HOLD_CHECK_S
    watch.cancel()

    assert hold.checks >= 4 and taken == []
    assert "could not check the bot's hold on its database (DatabaseUnreachable: connection refused)" in caplog.text


async def test_a_database_out_of_reach_for_hours_is_logged_once_as_it_goes_and_once_as_it_comes_back(caplog):
    caplog.set_level("INFO", logger="bot.app")
    timers, taken = Timers(), []
    outage = [DatabaseUnreachable("connection refused") for _ in range(120)]  # two hours of checks
    hold = ScriptedHold(True, *outage, True, True, DatabaseUnreachable("connection refused"), True)
    watch = asyncio.create_task(keep_hold(hold, taken.append, timers.sleep))  # type: ignore[arg-type]
    for _ in range(len(outage) + 6):
        await timers.fire()
    watch.cancel()

    assert hold.checks == len(outage) + 5 and taken == []
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "could not check the bot's hold on its database (DatabaseUnreachable: connection refused); "
                    "trying again every 60 s"),
        ("INFO", "the bot's hold on its database is checked again (it could not be: DatabaseUnreachable: connection "
                 "refused)"),
        ("WARNING", "could not check the bot's hold on its database (DatabaseUnreachable: connection refused); "
                    "trying again every 60 s"),
        ("INFO", "the bot's hold on its database is checked again (it could not be: DatabaseUnreachable: connection "
                 "refused)")]


async def test_a_database_another_bot_took_is_reported_once_and_the_watch_ends():
    timers, taken = Timers(), []
    hold = ScriptedHold(True, DatabaseInUse("another process holds this database as its bot's"))
    watch = asyncio.create_task(keep_hold(hold, taken.append, timers.sleep))  # type: ignore[arg-type]
    await timers.fire()
    await timers.fire()
    await asyncio.wait_for(watch, WAIT)

    assert taken == ["another process holds this database as its bot's"] and hold.checks == 2
