"""Whole-token denylist matching on normalised prompts, with an allowlist that wins.

Design of shared/research/policy-libs.md §3.4: words, phrases (also written as one joined token, "elonmusk"),
`stem*` prefixes, leet and squeezed-repeat readings of each token, windows over letter-spaced runs ("n u d e",
"K.K.K."), and ' + ' co-occurrence rules. Tokens are never joined across ordinary words ("pen is").
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bot.moderation.policy.entries import DenylistEntry, Term, parse_pattern
from bot.moderation.policy.normalise import normalise, token_forms, tokenise

log = logging.getLogger(__name__)

_REPEAT_RE = re.compile(r"(.)\1+")
MAX_JOINED_CHARS = 32  # longest letter-spaced window joined into one token; longer than any listed name


@dataclass(frozen=True)
class _Slot:
    """A token, or a window of single-character tokens joined into one, spanning token positions [start, end)."""

    start: int
    end: int
    forms: frozenset[str]


@dataclass(frozen=True)
class _Rule:
    """One ' + ' part of an entry as a term sequence; a joined phrase is a second rule with a single term."""

    entry: DenylistEntry
    part: int
    terms: tuple[Term, ...]


@dataclass(frozen=True)
class _Hit:
    """An occurrence of one part of an entry over token positions [start, end)."""

    entry: DenylistEntry
    part: int
    start: int
    end: int


@dataclass(frozen=True)
class DenylistReport:
    """What the list says about a prompt: the deny entries that fire, and the allow entries that overrode some."""

    denied: tuple[DenylistEntry, ...]
    allowed: tuple[DenylistEntry, ...]
    overridden: tuple[DenylistEntry, ...]


def _slots(tokens: list[str], feasible: Callable[[str], bool]) -> list[_Slot]:
    """One slot per token plus one per window (≥ 2) over each run of single-character tokens.

    A window grows only while some reading of it could still become a listed term, so "a b c d ..." stays linear.
    """
    slots = [_Slot(i, i + 1, token_forms(t)) for i, t in enumerate(tokens)]
    start = 0
    while start < len(tokens):
        end = start
        while end < len(tokens) and len(tokens[end]) == 1:
            end += 1
        for a in range(start, end):
            for b in range(a + 2, min(end, a + MAX_JOINED_CHARS) + 1):
                forms = token_forms("".join(tokens[a:b]))
                if not any(feasible(form) for form in forms):
                    break
                slots.append(_Slot(a, b, forms))
        start = end + 1
    return slots


def _squeeze_spaced_repeats(tokens: list[str]) -> list[str]:
    """Cut runs of one repeated single-character token to three ("n u u u u d e" → "n u u u d e")."""
    kept: list[str] = []
    for token in tokens:
        if len(token) > 1 or kept[-3:] != [token] * 3:
            kept.append(token)
    return kept


def _dedouble(text: str) -> str:
    """Collapse every run of a repeated character: "bloooody" → "blody"."""
    return _REPEAT_RE.sub(r"\1", text)


def _term_matches(term: Term, form: str) -> bool:
    text, is_stem = term
    return form.startswith(text) if is_stem else form == text


class _Index:
    """Rules keyed by their first term, so a prompt costs dict lookups per token form, not a scan of the list."""

    def __init__(self, entries: Iterable[DenylistEntry]) -> None:
        self.words: dict[str, list[_Rule]] = defaultdict(list)
        self.stems: dict[str, list[_Rule]] = defaultdict(list)
        self.parts: dict[DenylistEntry, int] = {}
        self.terms: set[Term] = set()
        for entry in entries:
            parts = parse_pattern(entry.pattern)
            self.parts[entry] = len(parts)
            for number, terms in enumerate(parts):
                self._add(_Rule(entry, number, terms))
                if len(terms) > 1:  # the phrase run together: "elonmusk", "whitesupremac*"
                    joined = ("".join(text for text, _ in terms), terms[-1][1])
                    self._add(_Rule(entry, number, (joined,)))
        self.stem_lengths = sorted({len(stem) for stem in self.stems})

    def _add(self, rule: _Rule) -> None:
        self.terms.update(rule.terms)
        text, is_stem = rule.terms[0]
        (self.stems if is_stem else self.words)[text].append(rule)

    def _first(self, forms: frozenset[str]) -> set[_Rule]:
        """Rules whose first term matches one of a slot's forms."""
        rules = set()
        for form in forms:
            rules.update(self.words.get(form, ()))
            for length in self.stem_lengths:
                if length > len(form):
                    break
                rules.update(self.stems.get(form[:length], ()))
        return rules

    def hits(self, slots: list[_Slot]) -> list[_Hit]:
        """Every rule occurrence in the prompt's slots."""
        by_start: dict[int, list[_Slot]] = defaultdict(list)
        for slot in slots:
            by_start[slot.start].append(slot)
        firsts: dict[frozenset[str], set[_Rule]] = {}  # windows over repeated letters share their forms
        hits = set()
        for slot in slots:
            if slot.forms not in firsts:
                firsts[slot.forms] = self._first(slot.forms)
            for rule in firsts[slot.forms]:
                end = _phrase_end(by_start, rule.terms[1:], slot.end)
                if end is not None:
                    hits.add(_Hit(rule.entry, rule.part, slot.start, end))
        return list(hits)


def _phrase_end(by_start: dict[int, list[_Slot]], terms: tuple[Term, ...], start: int) -> int | None:
    """The token position where the remaining terms end when they follow on from start, else None."""
    if not terms:
        return start
    for slot in by_start.get(start, ()):
        if any(_term_matches(terms[0], form) for form in slot.forms):
            end = _phrase_end(by_start, terms[1:], slot.end)
            if end is not None:
                return end
    return None


def _specificity(entry: DenylistEntry) -> tuple[int, str]:
    """Longer patterns are more specific: "heil hitler" is reported rather than "hitler"."""
    return len(entry.pattern), entry.pattern


class Denylist:
    """A compiled list of deny and allow entries; build it again when moderators edit the entries."""

    def __init__(self, entries: Iterable[DenylistEntry]) -> None:
        entries = list(dict.fromkeys(entries))
        self.entries = tuple(entries)
        self._deny = _Index(e for e in entries if e.kind == "deny")
        self._allow = _Index(e for e in entries if e.kind == "allow")
        terms = self._deny.terms | self._allow.terms
        self._prefixes = {_dedouble(text[:i]) for text, _ in terms for i in range(1, len(text) + 1)}
        self._stems = tuple(text for text, is_stem in terms if is_stem)

    def _feasible(self, form: str) -> bool:
        """Whether form, or a longer window that starts with it, could still match some term."""
        return _dedouble(form) in self._prefixes or form.startswith(self._stems)

    @classmethod
    def from_entries(cls, entries: Iterable[DenylistEntry]) -> Denylist:
        """Compile entries (from the database or load_default_entries()); ValueError names a malformed one."""
        return cls(entries)

    def explain(self, text: str) -> DenylistReport:
        """Which entries fire on text, for the refusal and for the moderators' 'denylist test' command."""
        slots = _slots(_squeeze_spaced_repeats(tokenise(normalise(text))), self._feasible)
        allow_hits = self._allow.hits(slots)
        covered = {pos for hit in allow_hits for pos in range(hit.start, hit.end)}
        kept: dict[DenylistEntry, set[int]] = defaultdict(set)
        overridden = set()
        for hit in self._deny.hits(slots):
            if covered.isdisjoint(range(hit.start, hit.end)):
                kept[hit.entry].add(hit.part)
            else:
                overridden.add(hit.entry)
                log.debug("allowlist overrode %r in %r", hit.entry.pattern, text)
        denied = [entry for entry, parts in kept.items() if len(parts) == self._deny.parts[entry]]
        return DenylistReport(
            denied=tuple(sorted(denied, key=_specificity, reverse=True)),
            allowed=tuple(sorted({hit.entry for hit in allow_hits}, key=_specificity, reverse=True)),
            overridden=tuple(sorted(overridden - set(denied), key=_specificity, reverse=True)),
        )

    def match(self, text: str) -> DenylistEntry | None:
        """The most specific deny entry that fires on text, or None."""
        denied = self.explain(text).denied
        return denied[0] if denied else None
