"""Denylist entries as data: the entry type, its pattern syntax, moderator validation and the shipped list.

Pattern syntax: a word ("nude"), a phrase ("pool of blood"), a prefix stem ("decapitat*", also as the last
word of a phrase) or a co-occurrence rule whose parts must all appear ("moon landing + staged"). An allowlist entry
written as one compound with its hyphens ("gore-tex") also protects inside a longer compound ("gore-tex-lined").
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources
from typing import Literal

from bot.moderation.policy.normalise import normalise

log = logging.getLogger(__name__)

CATEGORIES = ("sexual", "violence", "hate", "misinformation", "real_person")
ALLOW_CATEGORY = "allow"  # the category of allowlist entries, which protect innocent phrases in every category
DEFAULT_LIST = "default_denylist.txt"
MIN_STEM_LETTERS = 5  # shorter stems hit innocent words: sex* → sextant, nud* → nudge, porn* would be 4
MIN_ENTRY_LETTERS = 4  # entries of 3 letters or fewer collide with abbreviations and spaced-out letters

_PART_SPLIT_RE = re.compile(r"\s+\+\s+")
_FOREIGN_RE = re.compile(r"[^a-z0-9\s'*-]")  # what a part of a moderator's entry may not hold, once normalised
_TERM_RE = re.compile(r"[a-z0-9@$!|+]+\*?")
RENAMED = "# renamed:"  # a shipped entry's old name, in the list format: '# renamed: gore tex -> gore-tex'

Kind = Literal["deny", "allow"]
Term = tuple[str, bool]  # (text, is_stem): "decapitat*" → ("decapitat", True)


@dataclass(frozen=True)
class DenylistEntry:
    """One moderator-editable entry: a pattern, the policy category it enforces, deny or allow."""

    pattern: str
    category: str
    kind: Kind = "deny"

    def __post_init__(self) -> None:
        if self.kind not in ("deny", "allow"):
            raise ValueError(f"entry {self.pattern!r}: kind must be 'deny' or 'allow', not {self.kind!r}")
        allowed = (ALLOW_CATEGORY,) if self.kind == "allow" else CATEGORIES
        if self.category not in allowed:
            raise ValueError(f"entry {self.pattern!r}: category must be one of {', '.join(allowed)}, "
                             f"not {self.category!r}")
        parts = parse_pattern(self.pattern)
        if self.kind == "allow" and len(parts) > 1:
            raise ValueError(f"entry {self.pattern!r}: allowlist entries cannot use ' + ' co-occurrence")


def parse_pattern(pattern: str) -> tuple[tuple[Term, ...], ...]:
    """Split a pattern into its ' + ' parts, each a sequence of normalised terms; ValueError if malformed."""
    parts = []
    for raw in _PART_SPLIT_RE.split(pattern.strip()):
        text = normalise(raw)
        words = _TERM_RE.findall(text)
        if not any(c.isalnum() for word in words for c in word):
            raise ValueError(f"entry {pattern!r}: every part needs at least one letter or digit (a–z, 0–9: the "
                             "gate reads prompts as English)")
        if text.count("*") != sum(w.endswith("*") for w in words):
            raise ValueError(f"entry {pattern!r}: '*' may only end a word, as in 'decapitat*'")
        parts.append(tuple((w.rstrip("*"), w.endswith("*")) for w in words))
    return tuple(parts)


def validate_entry(entry: DenylistEntry) -> DenylistEntry:
    """Refuse entries that would match far too much or hold marks the syntax does not have (a regular expression's,
    a stray '+') (for moderator edits); return the entry if it is fine."""
    foreign = sorted({c for raw in _PART_SPLIT_RE.split(entry.pattern.strip()) for c in _FOREIGN_RE.findall(
        normalise(raw))})
    if foreign:
        raise ValueError(f"entry {entry.pattern!r}: {' '.join(foreign)} cannot be in an entry, which is plain words "
                         "(letters, digits, ' and -), '*' ending a word as a prefix, and ' + ' between parts that "
                         "must all appear; entries are not regular expressions: add 'kitten' and 'puppy' as two "
                         "entries rather than 'kitten|puppy'")
    parts = parse_pattern(entry.pattern)
    lone_stems = [terms[0][0] for terms in parts if len(terms) == 1 and terms[0][1]]  # in phrases, words anchor it
    for text in lone_stems:
        if len(text) < MIN_STEM_LETTERS:
            raise ValueError(f"entry {entry.pattern!r}: prefix stems need at least {MIN_STEM_LETTERS} letters "
                             f"('{text}*' would also match unrelated words); list the whole words instead")
    letters = sum(len(text) for terms in parts for text, _ in terms)
    if letters < MIN_ENTRY_LETTERS:
        raise ValueError(f"entry {entry.pattern!r}: entries need at least {MIN_ENTRY_LETTERS} letters; "
                         "shorter ones match abbreviations and spaced-out letters; use a phrase instead")
    return entry


def parse_entries(text: str) -> list[DenylistEntry]:
    """Read the list format: '[category]' or '[allow]' section headers, one pattern a line, '#' comments."""
    entries: list[DenylistEntry] = []
    section: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            continue
        if section is None:
            raise ValueError(f"line {number}: pattern {line!r} comes before any [category] header")
        kind: Kind = "allow" if section == ALLOW_CATEGORY else "deny"
        entries.append(DenylistEntry(line, section, kind))
    return entries


def parse_renames(text: str) -> dict[tuple[str, Kind], str]:
    """Read the list format's renames, '# renamed: old -> new' in the section of the new pattern, as (old pattern,
    kind) → new pattern (a start retires the old name's row: bot.moderation.denylist_edits.load_gates); ValueError
    names a malformed one."""
    entries = parse_entries(text)
    listed, shipped = {(e.pattern, e.category) for e in entries}, {(e.pattern, e.kind) for e in entries}
    renames: dict[tuple[str, Kind], str] = {}
    section: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        line, code = line.strip(), line.split("#", 1)[0].strip()
        if code.startswith("[") and code.endswith("]"):
            section = code[1:-1].strip()
        if not line.startswith(RENAMED):
            continue
        old, arrow, new = (part.strip() for part in line.removeprefix(RENAMED).partition("->"))
        kind: Kind = "allow" if section == ALLOW_CATEGORY else "deny"
        if not (old and arrow and new) or section is None:
            raise ValueError(f"line {number}: {line!r} should read '{RENAMED} old pattern -> new pattern', in the "
                             "section of the new pattern")
        if (new, section) not in listed or (old, kind) in shipped:
            raise ValueError(f"line {number}: {line!r}: the new pattern {new!r} must be an entry of [{section}] and "
                             f"the old {old!r} no longer one")
        renames[old, kind] = new
    return renames


def load_default_entries() -> list[DenylistEntry]:
    """The list shipped beside this module, default_denylist.txt (the seed for the moderators' database copy)."""
    text = resources.files(__package__).joinpath(DEFAULT_LIST).read_text(encoding="utf-8")
    entries = parse_entries(text)
    log.debug("loaded %d default denylist entries", len(entries))
    return entries


def load_default_renames() -> dict[tuple[str, Kind], str]:
    """The shipped list's renamed entries, (old pattern, kind) → new pattern, declared in default_denylist.txt."""
    return parse_renames(resources.files(__package__).joinpath(DEFAULT_LIST).read_text(encoding="utf-8"))
