"""The one check of a SQLite database's file on this host — that this user may reach it, read and write it (and the
journals and the lock file left beside it), and create SQLite's journal files (and a new database) beside it — for the
bot's start and `python -m storage` alike. Each answer is storage's words, naming no setting; a program adds its own
(bot.startup: DATABASE_URL, systemd)."""

from __future__ import annotations

import errno
import os
import pwd
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal


@dataclass(frozen=True)
class FileProblem:
    """Why this user cannot use a SQLite database file here. `text` says it in storage's words (what is wrong and what
    would be right, naming no setting); `path` is the file or folder at fault, `kind` what is wrong with it and
    `in_folder` whether that is the folder the file is in (or one above), so a program can add its own hint."""

    kind: Literal["unreachable", "a folder", "missing", "denied", "read-only", "not a folder", "not a file",
                  "unusable"]
    path: Path
    text: str
    in_folder: bool


def problem(file: Path, *, must_exist: bool = False) -> FileProblem | None:
    """What stops this user from using `file` as a SQLite database (None: nothing): a folder above it that it may not
    enter, a folder where the file goes, no file (when `must_exist`), a file that is no regular file (a FIFO, a device)
    or that it may not read and write (the database, or one of its `companions` left beside it), or a folder it may
    not create SQLite's journal files (and a new database) in."""
    try:
        there, folder = file.exists(), file.is_dir()
    except PermissionError:  # Python 3.11: a folder above it this user may not enter
        return _folder_problem(file, file.absolute())
    except OSError as error:  # a name too long, a loop of links
        return _unusable(file, error, in_folder=False)
    if folder:
        return FileProblem("a folder", file, f"{file.absolute()} is a folder; name the database file in it", False)
    if not there and must_exist:
        return FileProblem("missing", file, f"there is no database at {file.resolve()}", False)
    for used in (file, *companions(file)) if there else ():
        try:
            if (special := _special(used.stat().st_mode)) is not None:  # SQLite needs a file it can seek in
                return FileProblem("not a file", used, f"{used.absolute()} is {special}, not a database file; name a "
                                                       "regular file (or one that is not there yet)", False)
            with open(used, "r+b"):
                pass
        except FileNotFoundError:  # a companion that is not there: made when needed
            continue
        except PermissionError:
            owner = used.stat()
            return FileProblem("denied", used, (
                f"permission denied: user {_user()} may not read and write {used.absolute()} (uid {owner.st_uid}, "
                f"mode {owner.st_mode & 0o777:o}); give it to that user (chown) or run as its owner"), False)
        except OSError as error:
            return _unusable(used, error, in_folder=False)
    return _folder_problem(file, file.absolute().parent)


def lock_file(file: Path) -> Path:
    """The file beside a SQLite database (beside the file a link names) that one bot at a time holds locked
    (storage.db.held_alone)."""
    database = file.resolve()
    return database.with_name(f"{database.name}.lock")


def companions(file: Path) -> tuple[Path, ...]:
    """The files beside a SQLite database that its user must read and write too, where they are left: SQLite's WAL
    journals and the bot's lock file (one left by a command run as another user, root say, stops the start)."""
    database = file.resolve()
    return (database.with_name(f"{database.name}-wal"), database.with_name(f"{database.name}-shm"), lock_file(file))


def _folder_problem(file: Path, start: Path) -> FileProblem | None:
    """Whether this user may create files in the folder of `file` (SQLite's -wal and -shm journals, a new database):
    `start` or the nearest path above it that is there (where the missing folders would be made), or the folder above
    it that this user may not enter."""
    existing, denied = start, False
    while existing != existing.parent:
        try:
            if existing.exists():
                break
        except PermissionError:  # the folder above may not be entered
            denied = True
        existing = existing.parent
    if denied:
        return FileProblem("unreachable", existing, (
            f"permission denied: user {_user()} may not enter {existing}, so it cannot reach {file.absolute()}; let "
            f"that user in (chown, or chmod o+x {existing}) or keep the database in a folder it may write"), True)
    if not existing.is_dir():
        return FileProblem("not a folder", existing, f"{existing} is a file, not a folder; name a database file in a "
                                                     "folder", True)
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        return _unusable(existing, error, in_folder=True)
    return None


def _special(mode: int) -> str | None:
    """What a file that is not a regular one is ("a FIFO"), from its `st_mode`; None for a regular file."""
    for test, what in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return what
    return None if stat.S_ISREG(mode) else "not a regular file"


def _unusable(path: Path, error: OSError, *, in_folder: bool) -> FileProblem:
    """A file this user may not open for writing, or a folder it may not create files in: the system's reason."""
    where = f"create files in {path}" if in_folder else f"read and write {path.absolute()}"
    if error.errno == errno.EROFS:
        return FileProblem("read-only", path, f"{path.absolute()} is on a read-only file system for user {_user()}; "
                                              "keep the database on a writable one", in_folder)
    if isinstance(error, PermissionError):
        return FileProblem("denied", path, (f"permission denied: user {_user()} may not {where}; make it writable for "
                                            "that user (chown or chmod) or keep the database in a folder it may "
                                            "write"), in_folder)
    return FileProblem("unusable", path, f"user {_user()} cannot {where} ({error.strerror or error}); keep the "
                                         "database in a folder it may write", in_folder)


def _user() -> str:
    """'name (uid N)' of the effective user, as t2v.errors.current_user says it (storage imports no t2v)."""
    uid = os.geteuid()
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:  # a container's user may have a uid and no name
        return f"uid {uid}"
