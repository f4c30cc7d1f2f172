"""The one way the bot's background tasks are stopped (the dispatcher, the queue board, the retention sweep)."""

from __future__ import annotations

import asyncio
import contextlib


async def stop_task(task: asyncio.Task[None] | None) -> None:
    """Cancel `task` (None: there is none) and wait until it has ended, its cancellation not passed on."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
