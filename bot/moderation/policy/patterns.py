"""Chunk patterns (normalise.chunk_pattern) matched against every listed term at once, by walking a trie of the terms
with the pattern's automaton (a Thompson NFA: the set of positions reached in the pattern, kept per trie node).

A pattern is a sequence of units, each a set of letters that appears once, once or more (`x+`), or once or not at
all (a mask, WILDCARD). Walking the trie reads each prefix the terms share once, and stops where no position is
left, so a new pattern costs a few dozen steps instead of compiling a regular expression for it and trying it on
every term that begins with its first letter.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from bot.moderation.policy.entries import Term
from bot.moderation.policy.normalise import WILDCARD

_ALPHABET = frozenset("abcdefghijklmnopqrstuvwxyz")  # what a mask may hide: WILDCARD's [a-z]


@dataclass
class _Node:
    """A trie node: the terms that end here, and the next letters."""

    terms: list[Term] = field(default_factory=list)
    children: dict[str, _Node] = field(default_factory=dict)


@dataclass(frozen=True)
class _Unit:
    """One regex unit of a chunk pattern as the automaton reads it."""

    letters: frozenset[str]
    repeats: bool  # `x+`: once or more
    optional: bool  # WILDCARD: once or not at all

    @classmethod
    def parse(cls, unit: str) -> _Unit:
        """"n" → {n}; "n+" → {n} repeated; "[uv]" → {u, v}; WILDCARD → any letter, optional."""
        if unit == WILDCARD:
            return cls(_ALPHABET, repeats=False, optional=True)
        letters = unit.removesuffix("+")
        return cls(frozenset(letters.strip("[]") if letters.startswith("[") else letters),
                   repeats=unit.endswith("+"), optional=False)


class _Automaton:
    """The positions a prefix of a term may reach in a pattern, as the bits of an int: bit i means units[:i] are
    read."""

    def __init__(self, units: tuple[str, ...]) -> None:
        self.reads: dict[str, int] = defaultdict(int)  # letter → the positions i whose unit reads it next
        self.repeats: dict[str, int] = defaultdict(int)  # letter → the positions i + 1 whose unit i reads it again
        self.optional = 0  # the positions i whose unit may be skipped
        for i, unit in enumerate(map(_Unit.parse, units)):
            for letter in unit.letters:
                self.reads[letter] |= 1 << i
                if unit.repeats:
                    self.repeats[letter] |= 1 << (i + 1)
            if unit.optional:
                self.optional |= 1 << i

    def closure(self, positions: int) -> int:
        """positions, and those reached from them by skipping optional units."""
        while True:
            reached = positions | (positions & self.optional) << 1
            if reached == positions:
                return positions
            positions = reached

    def step(self, positions: int, letter: str) -> int:
        """The positions after reading one more letter: the next unit read, or a repeated unit read again."""
        after = (positions & self.reads.get(letter, 0)) << 1 | positions & self.repeats.get(letter, 0)
        return self.closure(after) if after else 0


class TermTrie:
    """The listed terms as a trie, for chunk patterns: which terms a pattern spells as a whole word, as a word plus
    a shown inflection, or as a stem* prefix."""

    def __init__(self, terms: set[Term]) -> None:
        self.root = _Node()
        for term in terms:
            node = self.root
            for letter in term[0]:
                node = node.children.setdefault(letter, _Node())
            node.terms.append(term)

    def match(self, units: tuple[str, ...], ends: frozenset[int], ends_before_e: frozenset[int],
              min_stem: int) -> set[Term]:
        """The terms units spell: a word when the walk ends at a position in `ends`, or is at a position in
        `ends_before_e` before a final "e" (a base with "e" added: "tortur" → torture); a stem* term of `min_stem`
        letters or more when it ends anywhere in the pattern (the term begins the chunk)."""
        automaton = _Automaton(units)
        ends_mask, before_e_mask = sum(1 << end for end in ends), sum(1 << end for end in ends_before_e)
        found: set[Term] = set()
        stack = [(self.root, automaton.closure(1), 0)]
        while stack:
            node, positions, depth = stack.pop()
            for letter, child in node.children.items():
                after = automaton.step(positions, letter)
                if letter == "e" and positions & before_e_mask:
                    found.update(term for term in child.terms if not term[1])
                if not after:
                    continue
                for term in child.terms:
                    if (term[1] and depth + 1 >= min_stem) or (not term[1] and after & ends_mask):
                        found.add(term)
                stack.append((child, after, depth + 1))
        return found
