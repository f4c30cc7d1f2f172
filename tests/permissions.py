"""A folder this process may not enter (/home/alice, mode 0700, to a bot running as another user), for tests that run
as root, whom permission bits do not stop: looking up anything under it (os.stat, hence Path.exists(), is_dir(),
is_file(), which raise on Python 3.11) or opening it or the folder fails with EACCES, as it does for that user."""

from __future__ import annotations

import builtins
import errno
import os
from pathlib import Path
from typing import Any

import pytest


def lock_out(monkeypatch: pytest.MonkeyPatch, folder: Path) -> Path:
    """Make `folder` (absolute; made if missing) one this process may not enter: it sees the folder, nothing in it."""
    folder.mkdir(parents=True, exist_ok=True)
    real_stat, real_open, real_os_open = os.stat, builtins.open, os.open

    def inside(path: Any) -> bool:
        if isinstance(path, int):  # a file descriptor
            return False
        return folder in Path(os.path.abspath(os.fsdecode(path))).parents

    def opens(path: Any) -> bool:  # the folder itself too (a listing, O_TMPFILE)
        return inside(path) or (not isinstance(path, int) and Path(os.path.abspath(os.fsdecode(path))) == folder)

    def denied(path: Any) -> PermissionError:
        return PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fsdecode(path))

    def stat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if inside(path):
            raise denied(path)
        return real_stat(path, *args, **kwargs)

    def open_(file: Any, *args: Any, **kwargs: Any) -> Any:
        if opens(file):
            raise denied(file)
        return real_open(file, *args, **kwargs)

    def os_open(path: Any, *args: Any, **kwargs: Any) -> int:
        if opens(path):
            raise denied(path)
        return real_os_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat)
    monkeypatch.setattr(builtins, "open", open_)
    monkeypatch.setattr(os, "open", os_open)
    return folder
