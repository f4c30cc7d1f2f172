"""Styles: the operator's LoRA fine-tunes (STYLES_FILE), read and checked at start, loaded and applied on the workers.

The styles file is TOML, one table per style, its name the style's (what /video's `style` option takes):

    [claymation]
    file = "loras/claymation.safetensors"   # relative to the styles file; or a folder holding diffusers' file
    scale = 0.8                              # as diffusers' fuse_lora(lora_scale=); default 1
    prefix = "claymation style, "            # put before the member's prompt (the model sees it; nobody is shown it)
    suffix = ", stop motion"                 # put after it
    description = "Clay figures, stop-motion look"   # shown beside the name in /video's autocomplete
    optional = true                          # a missing, broken or misfitting file is skipped with a warning

`read_styles` checks the file's form (a style or a key declared twice: one line naming it and both its lines) and,
through t2v's own `--lora` check (t2v.preflight.lora), that each LoRA file is there and holds LoRA weights, before any
model loads: a problem of a required style is one line of a SettingsError, an optional style's is a warning and the
style is left out. Whether a file fits the model is known once a worker has loaded it: `load_styles` (a misfit of a
required style stops the start, one line). On the worker, `use_style` changes the fused LoRA only when the style
changes (`pipe.set_lora`), and `styled` builds the prompt the model sees. Importing this module loads no torch.
"""

from __future__ import annotations

import codecs
import json
import logging
import math
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.errors import SettingsError, StyleGone
from bot.paths import Written, path_problem
from t2v.config import LORA_SCALE_RANGE
from t2v.request import GenerationRequest
from t2v.sizes import bytes_text

if TYPE_CHECKING:
    from t2v.pipeline import VideoPipeline

log = logging.getLogger(__name__)

SETTING = "STYLES_FILE"
NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")  # Discord-safe: lower case, as a slash command's choice value
NONE = "none"  # /video's `style:none`: no style, even where the server's presets name one (so no style takes it)
SCALE_RANGE = LORA_SCALE_RANGE  # exclusive low, inclusive high: t2v's rule, the CLI's --lora too
MAX_WORDS = 200  # characters of a prefix or suffix
MAX_DESCRIPTION = 80  # characters: "name — description" fits a Discord choice's 100
MAX_FILE_BYTES = 16 * 2**20  # ≈ 50,000 styles: a larger STYLES_FILE is another file (weights), never read whole
KEYS = {"file", "scale", "prefix", "suffix", "description", "optional"}


@dataclass(frozen=True)
class Style:
    """One style of the styles file, as plain values (a Ray worker is sent these)."""

    name: str
    file: Path  # absolute
    scale: float = 1.0
    prefix: str = ""
    suffix: str = ""
    description: str = ""
    optional: bool = False

    def prompt(self, typed: str) -> str:
        """The prompt the model sees: the prefix, what the member typed, the suffix."""
        return f"{self.prefix}{typed}{self.suffix}"

    @property
    def shown(self) -> str:
        """'name — description', for a choice in Discord (at most 100 characters)."""
        return f"{self.name} — {self.description}" if self.description else self.name


@dataclass(frozen=True)
class Catalog:
    """The styles to load (file order), and the optional ones left out at start with why."""

    styles: tuple[Style, ...] = ()
    skipped: Mapping[str, str] = field(default_factory=dict)


def read_styles(path: Path | None, *, check_files: bool = True) -> Catalog:
    """The styles of STYLES_FILE (None: no styles); SettingsError with one line per problem of the file or of a
    required style. Optional styles with a missing or unreadable file are in `skipped`. Without `check_files` (the
    files are on other hosts: T2V_EXECUTOR=ray) the workers find such problems when they load the styles."""
    if path is None:
        return Catalog()
    try:
        text = _text(path)
    except OSError as error:
        raise SettingsError([f"{SETTING}={path}: cannot read it ({error.strerror}); set {SETTING} to the TOML file "
                             "that lists the styles (docs/lora.md, \"Styles in the bot\")"]) from None
    except UnicodeDecodeError as error:
        raise SettingsError([f"{SETTING}={path}: not a UTF-8 TOML file ({error.reason}); set {SETTING} to the TOML "
                             "file that lists the styles (not a LoRA's .safetensors), saved as UTF-8"]) from None
    try:
        tables = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:  # a style or a key declared twice is one line each, naming it
        raise SettingsError(_duplicates(path, text) or [
            f"{SETTING}={path}: not valid TOML ({error}); each style is a table such as [claymation] with file = "
            "\"claymation.safetensors\""]) from None
    problems: list[str] = []
    styles: list[Style] = []
    skipped: dict[str, str] = {}
    for name, table in tables.items():
        try:
            style = _style(path, name, table)
        except ValueError as error:
            problems.append(str(error))
            continue
        problem = _file_problem(path, style) if check_files else None
        if problem is None:
            styles.append(style)
        elif style.optional:
            skipped[name] = problem
        else:
            problems.append(f"{problem}; fix the file, or mark the style optional = true to start without it")
    if not tables:
        problems.append(f"{SETTING}={path} lists no styles (it is empty, or all comments): add a table for each "
                        "style, such as [claymation] with file = \"claymation.safetensors\", or unset "
                        f"{SETTING} to offer none")
    if problems:
        raise SettingsError(problems)
    return Catalog(tuple(styles), skipped)


def _text(path: Path) -> str:
    """The styles file's text: UTF-8, a byte-order mark allowed (Notepad writes one, as the .env reader allows);
    UnicodeDecodeError, its reason in words, for another encoding or a binary file (a LoRA's weights); SettingsError
    for a text larger than MAX_FILE_BYTES. At most that much is read, so that a model's weights named by mistake
    (gigabytes) are never held in memory to be told apart."""
    with path.open("rb") as file:
        data = file.read(MAX_FILE_BYTES + 1)
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise UnicodeDecodeError("utf-8", data, 0, 2, "it is UTF-16")
    if b"\x00" in data:  # no text file holds one; every .safetensors does, in its first 8 bytes
        at = data.index(b"\x00")
        raise UnicodeDecodeError("utf-8", data, at, at + 1, f"a NUL byte at offset {at}: a binary file, or UTF-16")
    if len(data) > MAX_FILE_BYTES:
        raise SettingsError([f"{SETTING}={path}: larger than {bytes_text(MAX_FILE_BYTES)}, so not a styles file; set "
                             f"{SETTING} to the TOML file that lists the styles (docs/lora.md, \"Styles in the "
                             "bot\")"])
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        error.reason = f"byte 0x{data[error.start]:02x} at offset {error.start} is not UTF-8"
        raise


# The statements of a TOML file, enough to tell where a table or a key is declared (tomllib says only "Cannot
# declare ('clay',) twice (at line 7, column 7)"): a key is bare or quoted, its dotted parts joined by '.'; a value
# ends at the first line end outside its strings and brackets.
_BARE = re.compile(r"[A-Za-z0-9_-]+")
_KEY_PART = re.compile(r"""[ \t]*([A-Za-z0-9_-]+|"(?:[^"\\\n]|\\.)*"|'[^'\n]*')[ \t]*""")
_GAP = re.compile(r"(?:[ \t\r\n]+|#[^\n]*)*")
_LINE_END = re.compile(r"[ \t]*(?:#[^\n]*)?(?:\r?\n|\Z)")
_VALUE_TOKEN = re.compile(r'"""(?:[^\\]|\\.)*?"{3,5}' r"|'''.*?'{3,5}" r'|"(?:[^"\\\n]|\\.)*"' r"|'[^'\n]*'|#[^\n]*"
                          r"""|[^"'#\[\]{}\n]+|[\[\]{}\n]""", re.S)


def _duplicates(path: Path, text: str) -> list[str]:
    """One line for each style or key that the file declares twice (what tomllib refuses), naming it and both lines;
    [] when there is none (the file's problem is another)."""
    first: dict[tuple[str | int, ...], tuple[int, str]] = {}  # a table's or key's path: its first line, and how
    table: tuple[str | int, ...] = ()  # the table the keys are in (an array's element: its line, to tell them apart)
    lines = []
    for line, kind, key in _declarations(text):
        if kind == "key":
            full = table + key
            prefixes = [full[:end] for end in range(len(table) + 1, len(full))]  # the tables a dotted key makes
            clash = full if full in first else next((p for p in prefixes if first.get(p, (0, ""))[1] == "value"), None)
            first.update({p: (line, "dotted") for p in prefixes if p not in first})
            first.setdefault(full, (line, "value"))
        else:
            clash = key if key in first and (kind == "table" or first[key][1] != "array") else None
            first.setdefault(key, (line, kind))
            table = key + ((line,) if kind == "array" or clash else ())  # a table again: its keys, not told twice
        if clash is not None:
            lines.append(_declared_twice(path, clash, first[clash][0], line))
    return lines


def _declared_twice(path: Path, key: tuple[str | int, ...], before: int, line: int) -> str:
    names = [part if _BARE.fullmatch(part) else json.dumps(part, ensure_ascii=False)
             for part in key if isinstance(part, str)]
    if len(names) == 1:
        return (f"{SETTING}={path}: the style [{names[0]}] is declared twice (at lines {before} and {line}); give "
                "each style name one table: merge the two, or rename one")
    return (f"{SETTING}={path} [{names[0]}]: {'.'.join(names[1:])} is given twice (at lines {before} and {line}); "
            "give each key once: keep the one you mean and remove the other")


def _declarations(text: str) -> Iterator[tuple[int, str, tuple[str, ...]]]:
    """(line, kind, key) of each table header ("table": [a], "array": [[a]]) and key ("key": a.b = …, the key
    within its table) of a TOML text, in order, up to the first statement it cannot read."""
    at, line, counted = 0, 1, 0
    while True:
        at = _GAP.match(text, at).end()
        if at == len(text):
            return
        line, counted = line + text.count("\n", counted, at), at
        if text[at] == "[":
            kind, close = ("array", "]]") if text.startswith("[[", at) else ("table", "]")
            key, at = _key(text, at + len(close))
            end = _LINE_END.match(text, at + len(close)) if key and text.startswith(close, at) else None
            if end is None:
                return
            yield line, kind, key
            at = end.start()
        else:
            key, at = _key(text, at)
            if not key or not text.startswith("=", at):
                return
            yield line, "key", key
            at = _value_end(text, at + 1)
            if at is None:
                return


def _key(text: str, at: int) -> tuple[tuple[str, ...], int]:
    """The (dotted) key at `at`, its parts unquoted, and where it ends; () when none is there."""
    parts = []
    while (match := _KEY_PART.match(text, at)) is not None:
        part, at = match.group(1), match.end()
        if part.startswith('"'):
            try:
                part = tomllib.loads(f"k = {part}")["k"]  # TOML's escapes, as tomllib reads them
            except tomllib.TOMLDecodeError:
                return (), at
        parts.append(part[1:-1] if part.startswith("'") else part)
        if not text.startswith(".", at):
            return tuple(parts), at
        at += 1
    return (), at


def _value_end(text: str, at: int) -> int | None:
    """Where the value starting at `at` ends (after its line end); None when it cannot be read."""
    depth = 0
    while at < len(text):
        match = _VALUE_TOKEN.match(text, at)
        if match is None:
            return None
        at, token = match.end(), match.group()
        depth += (token in ("[", "{")) - (token in ("]", "}"))
        if token == "\n" and depth <= 0:
            break
    return at


def _style(path: Path, name: str, table: Any) -> Style:
    """One table as a Style; ValueError naming the bad value and what would be right."""
    where = f"{SETTING}={path} [{name}]"
    if not NAME_RE.fullmatch(name) or name == NONE:
        raise ValueError(f"{SETTING}={path}: the style name {name!r} is not 1–32 lower-case letters, digits, - or _ "
                         f"(starting with a letter or digit; {NONE!r} is taken: it means no style)")
    if not isinstance(table, dict):
        raise ValueError(f"{where}: {table!r} is not a table; write [{name}] and below it file = \"….safetensors\"")
    unknown = sorted(set(table) - KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]}; a style has {', '.join(sorted(KEYS))}")
    file = table.get("file")
    if not isinstance(file, str) or not file.strip():
        raise ValueError(f"{where}: file = {file!r}: name the LoRA's .safetensors file (relative to {path.parent})")
    _check_path(where, path, file)
    scale = table.get("scale", 1.0)
    low, high = SCALE_RANGE
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not (math.isfinite(scale)
                                                                            and low < scale <= high):
        raise ValueError(f"{where}: scale = {scale!r} is not a number above {low:g} and at most {high:g}")
    words = {key: table.get(key, "") for key in ("prefix", "suffix", "description")}
    for key, value in words.items():
        limit = MAX_DESCRIPTION if key == "description" else MAX_WORDS
        if not isinstance(value, str) or len(value) > limit or any(c in value for c in "\n\r\t\x00"):
            raise ValueError(f"{where}: {key} = {value!r} is not one line of text of at most {limit} characters")
    optional = table.get("optional", False)
    if not isinstance(optional, bool):
        raise ValueError(f"{where}: optional = {optional!r} is not true or false")
    return Style(name, (path.parent / file).absolute(), float(scale), words["prefix"], words["suffix"],
                 words["description"].strip(), optional)


def _check_path(where: str, path: Path, file: str) -> None:
    """A LoRA path as written that cannot be what was meant: the CLI's PATH:SCALE form (t2v.preflight.lora checks
    PATH, the worker would load "PATH:SCALE", which is no file), else what the path settings refuse too (bot.paths:
    spaces at its ends, a control character, a leading '~')."""
    head, colon, tail = file.rpartition(":")
    if colon and head and _number(tail):
        raise ValueError(f"{where}: file = {file!r} ends with a scale, which a style gives on its own line: write "
                         f"file = {head!r} and scale = {tail.strip()}")
    problem = path_problem(file, Written("file", f"{where}: ", toml=True, relative_to=path.absolute().parent))
    if problem is not None:
        raise ValueError(problem)


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _file_problem(path: Path, style: Style) -> str | None:
    """t2v's own check of a LoRA file (the CLI's --lora), as one line naming the style."""
    from t2v import preflight  # lazily: it imports torch, which the bot loads anyway from here on

    return preflight.lora(f"{SETTING}={path} [{style.name}] file", str(style.file))


def check_styles(path: Path | None, *, check_files: bool = True) -> list[str]:
    """The start check (bot.startup): one line per problem that stops the start; [] when the styles are usable."""
    try:
        read_styles(path, check_files=check_files)
    except SettingsError as error:
        return error.lines
    return []


# --- on the workers ---------------------------------------------------------------------------------------------


def load_styles(pipeline: VideoPipeline, styles: tuple[Style, ...]) -> dict[str, Style]:
    """Load every style into the pipeline (read and checked against the model: t2v.WeightsError, LoraError; or its
    reading failing midway: OSError); the styles loaded, by name. A required style's problem is a SettingsError (one
    line: the start stops), an optional one's a warning."""
    from t2v.errors import WeightsError  # lazily: the worker has torch loaded already

    loaded = {}
    for style in styles:
        try:
            pipeline.load_lora(style.file, style.name)
        except (WeightsError, OSError) as error:  # a LoraError (not for this model, not there) names the keys or the
            # file; an OSError is the reading itself failing midway (a network share gone, a failing disk)
            said = error if isinstance(error, WeightsError) else f"reading it failed ({error.strerror or error})"
            line = f"{SETTING} [{style.name}] file {style.file}: {said}"
            if not style.optional:
                raise SettingsError([f"{line}; fix the file, or mark the style optional = true to start without "
                                     "it"]) from None
            log.warning("style %s is left out: %s", style.name, line)
            continue
        loaded[style.name] = style
    if loaded:
        log.info("styles loaded: %s", ", ".join(loaded))
    return loaded


def use_style(pipeline: VideoPipeline, styles: Mapping[str, Style], name: str | None) -> Style | None:
    """Make `name` (None: no style) the pipeline's fused style, calling set_lora only when that changes; StyleGone
    when it is not loaded here (a job queued before the operator took it out of STYLES_FILE)."""
    style = None if name is None else styles.get(name)
    if name is not None and style is None:
        raise StyleGone(f"no style {name!r} is loaded on this worker (loaded: {', '.join(styles) or 'none'})")
    active = getattr(getattr(pipeline, "styles", None), "active", None)
    wanted = None if style is None else (style.name, style.scale)
    if (None if active is None else (active.name, active.scale)) != wanted:
        pipeline.set_lora(*((None,) if style is None else wanted))
    return style


def styled(request: GenerationRequest, style: Style | None) -> GenerationRequest:
    """The request the model renders: the style's prefix and suffix around the member's prompt."""
    return request if style is None else replace(request, prompt=style.prompt(request.prompt))
