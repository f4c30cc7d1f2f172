"""Chunk patterns (normalise.chunk_pattern) matched against every listed term at once, by walking a trie of the terms
with the pattern's automaton (Thompson's construction: a set of positions in the pattern per trie node).

A pattern is a sequence of units, each a set of letters that appears once, once or more (`x+`), or once or not at
all (a mask, WILDCARD). Walking the trie reads each prefix the terms share once, and stops where no position is
left, so a new pattern costs a few dozen steps instead of compiling a regular expression for it and trying it on
every term that begins with its first letter.
"""

from __future__ import annotations

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
    """The positions a prefix of a term may reach in a pattern: position i means units[:i] are read."""

    def __init__(self, units: tuple[str, ...]) -> None:
        self.units = [_Unit.parse(unit) for unit in units]

    def closure(self, positions: set[int]) -> frozenset[int]:
        """positions, and those reached from them by skipping optional units."""
        reached = set(positions)
        for i in sorted(positions):
            while i < len(self.units) and self.units[i].optional:
                i += 1
                reached.add(i)
        return frozenset(reached)

    def step(self, positions: frozenset[int], letter: str) -> frozenset[int]:
        """The positions after reading one more letter: the next unit read, or a repeated unit read again."""
        units = self.units
        after = {i + 1 for i in positions if i < len(units) and letter in units[i].letters}
        after.update(i for i in positions if i > 0 and units[i - 1].repeats and letter in units[i - 1].letters)
        return self.closure(after) if after else frozenset()


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
        found: set[Term] = set()
        stack = [(self.root, automaton.closure({0}), 0)]
        while stack:
            node, positions, depth = stack.pop()
            for letter, child in node.children.items():
                after = automaton.step(positions, letter)
                if letter == "e" and not positions.isdisjoint(ends_before_e):
                    found.update(term for term in child.terms if not term[1])
                if not after:
                    continue
                for term in child.terms:
                    if (term[1] and depth + 1 >= min_stem) or (not term[1] and not after.isdisjoint(ends)):
                        found.add(term)
                stack.append((child, after, depth + 1))
        return found
