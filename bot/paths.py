"""Why a path as an operator wrote it cannot be what they meant, in one line naming it: the one check of the path
settings (bot.settings: MEDIA_DIR=…) and of a style's LoRA file (bot.gpu.styles: file = "…"). Loads no torch."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Written:
    """Where a path was written, as the line refusing it shows it: an env file's NAME=value, or a TOML file's
    key = 'value' (a string as Python writes it, which TOML reads the same)."""

    name: str  # MEDIA_DIR; file
    before: str = ""  # what the line says first: "STYLES_FILE=/srv/styles.toml [clay]: "
    toml: bool = False  # a TOML string (shown quoted); else a bare env file value
    relative_to: Path | None = None  # the folder a relative path starts from, offered beside the full path

    def assign(self, value: str, *, exact: bool = False) -> str:
        """NAME=value or key = 'value'; with `exact` the value is quoted anyway, showing its spaces and controls."""
        if self.toml:
            return f"{self.name} = {value!r}"
        return f"{self.name}={value!r}" if exact else f"{self.name}={value}"


def path_problem(value: str, written: Written) -> str | None:
    """Why `value`, a path as written, cannot be what was meant; None when it can. Spaces at its ends (env files,
    systemd and docker keep them: part of the name), a control character (a quoted .env's escaped \\t; a NUL, which
    open() refuses with a ValueError) or an invisible one (a zero-width space or a bidi mark pasted with it: a name
    nobody can type again), or a leading '~' (only shells expand it: here a folder named '~')."""
    if value != value.strip():
        return (f"{written.before}{written.assign(value, exact=True)} has spaces at its ends, which would be part of "
                f"the path: remove them ({written.assign(value.strip())})")
    hidden = next((c for c in value if unicodedata.category(c) in ("Cc", "Cf")), None)
    if hidden is not None:
        kind = "control" if unicodedata.category(hidden) == "Cc" else "invisible"
        return (f"{written.before}{written.assign(value, exact=True)} holds the {kind} character {hidden!r}, which "
                "no file name should: remove it")
    if value.startswith("~"):
        return (f"{written.before}{written.assign(value)}: '~' is not expanded here (it would be a folder named "
                f"'~'); write the full path{_expanded(value, written)}")
    return None


def _expanded(value: str, written: Written) -> str:
    """The full path a '~' stands for in a shell, as an example (none for ~name of a user this host does not know),
    and the folder a relative path would start from."""
    try:
        full = str(Path(value).expanduser())
    except RuntimeError:
        full = None
    example = "" if full is None else f" such as {full!r}" if written.toml else f", e.g. {full}"
    relative = "" if written.relative_to is None else f", or one relative to {written.relative_to}"
    return example + relative
