"""A throwaway PostgreSQL cluster for the storage tests: initdb in a temp dir, `pg_ctl start -w` on a free port."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import asyncpg

from tests.net import free_port

SUPERUSER = "videobot"
DATABASE = "videobot_test"
# The server refuses to run as root; as root the cluster belongs to the account Debian's package creates.
SERVER_ACCOUNT = "postgres"
# A cluster thrown away after the session needs no crash safety: skipping fsync makes CREATE DATABASE cheap.
SERVER_OPTIONS = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"


class PostgresUnavailable(RuntimeError):
    """PostgreSQL cannot be run here; the message says what is missing."""


def find_bindir() -> Path:
    """The directory with initdb and pg_ctl: from PATH, else Debian's newest /usr/lib/postgresql/<major>/bin."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).resolve().parent
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda path: _major(path.parent.name))
    for bindir in reversed(debian):
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            return bindir
    raise PostgresUnavailable("initdb and pg_ctl are neither on PATH nor under /usr/lib/postgresql/*/bin "
                              "(Debian/Ubuntu: apt-get install postgresql)")


def _major(version: str) -> int:
    """The major version a /usr/lib/postgresql/<version> directory names; 0 when it is not a number."""
    return int(version) if version.isdigit() else 0


def _server_account() -> pwd.struct_passwd:
    """The account to run the server as when the tests run as root (the server refuses to run as root)."""
    try:
        return pwd.getpwnam(SERVER_ACCOUNT)
    except KeyError:
        raise PostgresUnavailable(f"running as root and there is no {SERVER_ACCOUNT!r} account to run "
                                  "the server as") from None


class PostgresCluster:
    """One initdb'd data directory and its server, with one database that each test gets empty."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.port = free_port()
        owner = _server_account() if os.geteuid() == 0 else None
        self._run_as = [] if owner is None else ["runuser", "-u", owner.pw_name, "--"]
        self.root = Path(tempfile.mkdtemp(prefix="videobot-pg-"))  # short: unix socket paths are limited
        self.data = self.root / "data"
        if owner is not None:
            os.chown(self.root, owner.pw_uid, owner.pw_gid)

    def _tool(self, name: str, *args: str) -> None:
        """Run one of the server's programs, raising with its output when it fails."""
        command = [*self._run_as, str(self.bindir / name), *args]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            server_log = self.root / "server.log"
            tail = server_log.read_text(errors="replace")[-2000:] if server_log.exists() else ""
            raise PostgresUnavailable(f"{' '.join(command)} failed ({result.returncode}):\n"
                                      f"{result.stdout}{result.stderr}{tail}")

    def start(self) -> None:
        """initdb, start the server and create the test database; on failure leave nothing behind."""
        try:
            self._initdb_and_start()
        except BaseException:
            self.stop()
            raise

    def _initdb_and_start(self) -> None:
        """initdb (trust auth, UTF-8, C locale), then `pg_ctl start -w`: it returns once the server accepts."""
        self._tool("initdb", "-D", str(self.data), f"--username={SUPERUSER}", "--auth=trust", "--encoding=UTF8",
                   "--no-locale", "--no-sync")
        options = f"-h 127.0.0.1 -p {self.port} -k {self.root} {SERVER_OPTIONS}"
        self._tool("pg_ctl", "start", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-t", "60",
                   "-o", options)
        self._tool("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, DATABASE)

    def stop(self) -> None:
        """Stop the server (fast: disconnect clients) and delete the cluster."""
        try:
            if (self.data / "postmaster.pid").exists():
                self._tool("pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    @property
    def url(self) -> str:
        """The test database's URL as DATABASE_URL would hold it (plain postgresql://, mapped to asyncpg)."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{DATABASE}"

    async def empty_database(self) -> str:
        """Empty the test database (a new public schema: no tables, sequences from 1) and return its URL.

        Much cheaper than CREATE DATABASE per test (~20 ms vs ~300 ms). Connections a test left open are ended
        first, and a lock still held after that fails the reset instead of hanging it.
        """
        admin = await asyncpg.connect(host="127.0.0.1", port=self.port, user=SUPERUSER, database=DATABASE)
        try:
            await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE datname = current_database() AND pid <> pg_backend_pid()")
            await admin.execute("SET lock_timeout = '10s'; DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        finally:
            await admin.close()
        return self.url
