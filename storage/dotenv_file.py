"""A `.env` file read as the bot reads it, for the bot's settings (bot.settings) and `python -m storage` alike: one
reader, so both find the same DATABASE_URL in it.

python-dotenv's parser and its ${VAR} expansion, except that a value in single quotes is taken as written, as a
shell takes it: python-dotenv expands ${VAR} in every value, so DATABASE_URL='postgresql://bot:pa${ss}@db/videobot'
lost the password's ${ss}.
"""

from __future__ import annotations

import os
import re

from dotenv.parser import Binding, parse_stream
from dotenv.variables import parse_variables

_SINGLE_QUOTED = re.compile(r"\s*(?:export[^\S\r\n]+)?(?:'[^']+'|[^=#\s]+)[^\S\r\n]*=[^\S\r\n]*'")  # KEY='value'
# in python-dotenv's grammar (dotenv.parser: export, a quoted or bare key, =, the value's opening quote)


def env_bindings(path: str | os.PathLike[str]) -> list[Binding]:
    """A `.env` file's statements as python-dotenv parses them, in file order (a byte-order mark is fine)."""
    with open(path, encoding="utf-8-sig") as stream:
        return list(parse_stream(stream))


def line_of(binding: Binding) -> int:
    """The line a `.env` statement starts on (python-dotenv counts from the blank lines before it)."""
    text = binding.original.string
    return binding.original.line + text[:len(text) - len(text.lstrip())].count("\n")


def read_env_file(path: str | os.PathLike[str]) -> dict[str, str | None]:
    """A `.env` file's variables, single-quoted values as written (see the module); a byte-order mark is fine."""
    values: dict[str, str | None] = {}
    for binding in env_bindings(path):
        if binding.key is None:  # a comment, or a line that is not NAME=value (bot.env_file.malformed_lines)
            continue
        value = binding.value
        if value is not None and not taken_as_written(binding):
            known = {**os.environ, **values}  # as python-dotenv resolves: the file's earlier lines over the environment
            value = "".join(atom.resolve(known) for atom in parse_variables(value))
        values[binding.key] = value
    return values


def taken_as_written(binding: Binding) -> bool:
    """Whether a `.env` line's value is in single quotes, which `read_env_file` takes as written (no ${VAR})."""
    return _SINGLE_QUOTED.match(binding.original.string) is not None
