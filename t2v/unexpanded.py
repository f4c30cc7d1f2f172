"""A ~ or $NAME in a path that no shell expanded: the one check, for t2v's command line and API (t2v.cli_parser,
t2v.preflight, t2v.loader) and the bot's path settings and styles (bot.paths, DATABASE_URL's file in bot.settings).
Taken as it is, such a path would be a folder named ~ or $NAME, made by whatever writes there. Loads no torch."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

_VARIABLE = re.compile(r"(?:^|(?<=/))\$(?:\{([A-Za-z_]\w*)\}|([A-Za-z_]\w*))")  # $NAME or ${NAME} starting a part


@dataclass(frozen=True)
class Unexpanded:
    """The part of a path that a shell would have expanded and nothing did, and the path a shell would have made."""

    typed: str  # as it stands in the path: ~, ~ann, $OUT, ${OUT}
    meant: str | None  # the whole path expanded; None where nothing can tell (no such user, the variable unset)
    variable: str | None = None  # OUT for $OUT or ${OUT}; None for a ~

    def said(self) -> str:
        """t2v's words for it: what no shell did, and the path to write instead (or that the variable is unset)."""
        if self.variable is None:
            return (f"the ~ is not expanded here (a shell expands it only at the start of a word, not after = or "
                    f"inside quotes); write {self.meant}")
        said = (f"{self.typed} is not expanded here (a shell expands it, but not inside single quotes, nor does "
                "Docker's exec-form CMD)")
        if self.meant is None:
            return f"{said}, and {self.variable} is not set; write the path out"
        return f"{said}; write {self.meant}"


def find(value: str, *, variables: bool = True, as_typed: bool = True) -> Unexpanded | None:
    """The first part of the path `value` a shell would have expanded: a leading ~ or ~user, or (with `variables`)
    a $NAME or ${NAME} starting a part. With `as_typed` (a command's arguments and t2v's API, which a shell may
    have handed over as typed on purpose: '$OUT' quoted), none where the path up to that part is there as typed, nor
    for a ~user that names no user here (a shell keeps it too). Without it (a setting or a styles file, which no
    shell reads), every leading ~ is one, even where a folder named ~ is there (one an earlier start made)."""
    if value.startswith("~"):
        first = Path(value).parts[0]
        known = os.path.expanduser(first) != first
        if not as_typed or (known and not Path(first).exists()):
            return Unexpanded(first, os.path.expanduser(value) if known else None)
    return _variable(value, as_typed) if variables else None


def problem(value: str) -> str | None:
    """t2v's line for a path (an option's value, an API's argument) with a part no shell expanded; None when none."""
    found = find(value)
    return None if found is None else found.said()


def _variable(value: str, as_typed: bool) -> Unexpanded | None:
    """The first $NAME or ${NAME} that starts a part of the path `value` (with `as_typed`, unless the path up to that
    part is there as typed), with what the variable holds here."""
    found = _VARIABLE.search(value)
    if found is None:
        return None
    end = value.find("/", found.end())
    if as_typed and Path(value[:end if end >= 0 else len(value)]).exists():
        return None
    name = found[1] or found[2]
    meant = value.replace(found[0], os.environ[name]) if name in os.environ else None
    return Unexpanded(found[0], meant, name)
