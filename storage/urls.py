"""DATABASE_URL as the storage layer reads it, without SQLAlchemy: which database and driver, where, and the URL as
logs may show it (the password masked). `python -m bot` checks it with its other settings, before anything heavy is
imported; storage.db builds the engine from the same reading.

The grammar is SQLAlchemy's (`backend[+driver]://[user[:password]@][host][:port][/database][?query]`), and so is
the reading: the user, the password and the database are percent-decoded (`p%40ss` is the password `p@ss`, as the
driver sends it). The databases are the two the migrations run on, each with the asyncio driver the bot ships.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from storage.errors import InvalidDatabaseURL

DRIVERS = {"sqlite": "aiosqlite", "postgresql": "asyncpg"}  # backend -> its asyncio driver (`sqlite://` means it)
EXAMPLES = "sqlite+aiosqlite:///videobot.db (a file here) or postgresql://user:password@host/database"
ENCODING = "@ as %40, # as %23, / as %2F, ? as %3F, : as %3A, % as %25"  # URL-encoding of a password's marks
MASK = "***"  # what shows in place of a password (as SQLAlchemy's hide_password)
_ALIASES = {"postgres": "postgresql"}  # names SQLAlchemy refuses but people write (Heroku, libpq)
_URL = re.compile(r"""
    (?P<name>[\w+.-]+)://
    (?:(?P<username>[^:/]*)(?::(?P<password>[^@]*))?@)?
    (?:(?:\[(?P<ipv6host>[^/?]+)\]|(?P<ipv4host>[^/:?]+))?(?::(?P<port>[^/?]*))?)?
    (?:/(?P<database>[^?]*))?
    (?:\?(?P<query>.*))?
""", re.VERBOSE | re.DOTALL)
# In any text: `user:password@` after an optional scheme, up to the last @ (a password may hold a stray @). Where a
# scheme is written, the user starts after it: the scheme's own `:` is not the one before a password
# (`postgresql://videobot@db` has none to mask).
_USERINFO = re.compile(r"^((?:[\w+.-]*://)?(?![\w+.-]*://)[^:/@?#\s]*:).*(?=@)", re.DOTALL)
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&]*")


@dataclass(frozen=True)
class DatabaseURL:
    """A DATABASE_URL the storage layer can use; `driver` is the asyncio driver it runs on. The user, the password
    and the database are percent-decoded, as SQLAlchemy's make_url reads them and the driver uses them."""

    backend: str  # sqlite | postgresql
    driver: str  # aiosqlite | asyncpg
    username: str | None
    password: str | None
    host: str | None
    port: int | None
    database: str | None  # a SQLite file (relative to the working directory), a PostgreSQL database name
    query: str | None

    @property
    def sqlite_file(self) -> Path | None:
        """The file of a SQLite database, or None for PostgreSQL or an in-memory database."""
        if self.backend != "sqlite" or not self.database or self.database == ":memory:":
            return None
        return Path(self.database)

    @property
    def address(self) -> str:
        """Where a server is looked for, as its users would write it: `host:port`, with libpq's defaults."""
        host = self.host or "localhost"
        return f"[{host}]:{self.port or 5432}" if ":" in host else f"{host}:{self.port or 5432}"


def parse(url: str) -> DatabaseURL:
    """Read a DATABASE_URL; InvalidDatabaseURL says what is wrong and what would be right."""
    _, scheme, rest = url.strip().partition("://")
    if scheme and (rest.partition("?")[0].count("@") > 1 or "#" in rest):
        # "user:p@ss#w@host": where the password ends cannot be told (libpq and SQLAlchemy would split it at
        # different places, and a part of it would show in a host name); never echo any of it
        raise InvalidDatabaseURL("the user and password part holds a '@' or '#' of its own: URL-encode the password "
                                 f"({ENCODING}), e.g. with python3 -c \"import urllib.parse; "
                                 "print(urllib.parse.quote(input(), safe=''))\"")
    match = _URL.fullmatch(url.strip())
    if match is None:
        raise InvalidDatabaseURL(f"not a database URL; use e.g. {EXAMPLES}")
    backend, _, driver = match["name"].partition("+")
    if backend in _ALIASES:
        raise InvalidDatabaseURL(f"write {_ALIASES[backend]}://, not {backend}:// (SQLAlchemy knows it by that name)")
    if backend not in DRIVERS:
        raise InvalidDatabaseURL(f"{backend!r} is not a database the bot can use: it stores its data in SQLite or "
                                 f"PostgreSQL; use e.g. {EXAMPLES}")
    if driver and driver != DRIVERS[backend]:
        raise InvalidDatabaseURL(f"the bot talks to {backend} through {DRIVERS[backend]} (asyncio), not {driver!r}; "
                                 f"write {backend}+{DRIVERS[backend]}:// or plain {backend}://")
    host = match["ipv6host"] or match["ipv4host"] or None
    port = _port(match["port"])
    if backend == "sqlite" and (host or port or match["username"] is not None):
        raise InvalidDatabaseURL("a SQLite URL names a file after three slashes, with no host: "
                                 "sqlite+aiosqlite:///relative/videobot.db or sqlite+aiosqlite:////absolute/videobot.db")
    return DatabaseURL(backend, DRIVERS[backend], _decoded(match["username"]) or None, _decoded(match["password"]),
                       host, port, _decoded(match["database"]) or None, match["query"])


def _decoded(part: str | None) -> str | None:
    """A user, password or database name percent-decoded, as SQLAlchemy's make_url does (`%40` is `@`)."""
    return None if part is None else unquote(part)


def _port(text: str | None) -> int | None:
    """The port after `host:`, 1 to 65535; none when empty."""
    if not text:
        return None
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise InvalidDatabaseURL(f"the port {text!r} is not a number from 1 to 65535")
    return int(text)


def shown(url: str) -> str:
    """The URL as logs and error lines may show it: its password masked, even when the URL cannot be read."""
    return _QUERY_PASSWORD.sub(rf"\g<1>{MASK}", _USERINFO.sub(rf"\g<1>{MASK}", url.strip()))


def passwords(url: str) -> tuple[str, ...]:
    """The password a readable URL carries, for the log filter to mask wherever it shows: as the driver uses it
    (percent-decoded: what its error messages would quote) and, where it differs, as the URL writes it. Empty when
    there is none or the URL cannot be read."""
    try:
        decoded = parse(url).password
    except InvalidDatabaseURL:
        return ()
    if not decoded:
        return ()
    match = _URL.fullmatch(url.strip())  # parse read it, so it matches
    written = match["password"] if match else decoded
    return (decoded,) if written == decoded else (decoded, written)
