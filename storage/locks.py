"""The one lock file of a process: an exclusive, non-blocking lock on a file that holds the holder's process id, which
the system frees when the process ends, however it ends (no stale lock is left behind). The database's lock beside a
SQLite file (`db.held_alone`) and the bot's on its media folder both take it."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from storage.errors import FileHeld


@contextmanager
def hold_file(path: Path) -> Iterator[None]:
    """Hold `path` (made if missing, its folder too) for this process alone while the block runs, writing this
    process's id into it; FileHeld naming the holder's id when another process has it, and OSError where the file
    cannot be made or the file system takes no locks (an NFS mount whose lock service is not running: ENOLCK)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="ascii") as file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            raise FileHeld(path, file.read().strip() or "unknown") from None
        file.seek(0)
        file.truncate()
        file.write(f"{os.getpid()}\n")
        file.flush()
        try:
            yield
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)
