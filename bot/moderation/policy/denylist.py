"""Denylist matching on normalised prompts, by mechanism rather than by listing every spelling; the allowlist wins.

A prompt is read as slots (bot.moderation.policy.normalise gives the clauses and chunks); each slot reads as the
listed terms it matches, and an entry fires when its terms follow one another in slots of one clause. Each way a
slot may read as a term answers a family of evasions (docs/policy.md has the measured rates):

- exact word, or the prefix of a `stem*` term;
- inflection by rule: a token whose Snowball stem differs from itself matches the terms with that stem ("nudes",
  "massacring", "school shootings", "elections + rigging"); a bare stem ("stab") matches only itself;
- the leet and mask readings of a disguised chunk ("p0rn", "|\\|ude", "n*de", "s.e.x"), and its pattern, a mask
  standing for one hidden letter or none ("nip#l_s", "strip#per"), also across two neighbouring chunks when either
  is marked ("ni'pp les"); common words joined by marks are read as written only ("go-re", not "blood-red");
- windows over runs of single letters ("n u d e", "K K K");
- two neighbouring tokens joined ("nu de", "car nage"); two common words only beside a two-letter fragment ("go re";
  never "pen is") or inside a longer phrase ("real foot age"); a word that stands alone ("a", "at") with no edit;
- repeated letters squeezed ("nuuude", "nudde"), and one edit (insert, delete, change, swap) for terms of
  MIN_FUZZY_LETTERS or more, or any length in a disguised chunk ("massacer", "p%rn"); both only for tokens that
  are not English words themselves ("bobs", "nudge" stay innocent), and an edit keeps the first letter;
- a phrase written as one token ("elonmusk"), and ' + ' co-occurrence rules whose parts may be anywhere.

The allowlist matches text as written only (exact, stem*, inflections), so that no disguise or edit makes a
prompt innocent ("elon musk on" is not "musk ox"). A phrase that begins inside a compound protects nothing ("a
half-naked flame"), nor one that ends where a compound begins that describes a person, whether the compound is
written with a hyphen ("a naked flame-haired woman") or with a space before the noun it describes ("a naked flame
haired woman", and disguised, "a naked flame h@ired woman", `_begins_compound`; never after a plural: in "naked
trees shading children" the trees shade): a word that shows a person (lexicon.PERSON_WORDS, read through disguises
as terms are) is in it or among the PERSON_REACH words after it ("a naked bulb lit cellar" is allowed), or heads a
noun compound the phrase's last word begins ("a naked tree hugger", as "a naked tree-hugger", `_heads_noun_compound`);
unless the entry is itself one compound written with its hyphens ("gore-tex", a name) or one word English also
writes closed ("pussy cat", as "pussycat"): its words never part, so it protects inside or before a longer compound
("a gore-tex-clad man", "a gore tex lined jacket", "a pussy cat loving woman", "a pussy cat lover").
"""

from __future__ import annotations

import functools
import logging
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from rapidfuzz import process
from rapidfuzz.distance import OSA

from bot.moderation.policy.entries import DenylistEntry, Term, parse_pattern
from bot.moderation.policy.lexicon import (
    BODY_ADJECTIVES,
    PERSON_WORDS,
    foreign_language,
    is_common_word,
    is_english_word,
    is_fragment,
    is_function_word,
    stands_alone,
    stem,
)
from bot.moderation.policy.normalise import WILDCARD, Chunk, chunks, clauses, normalise
from bot.moderation.policy.patterns import TermTrie

log = logging.getLogger(__name__)

_REPEAT_RE = re.compile(r"(.)\1+")
_TRIPLE_RE = re.compile(r"(.)\1{2,}")
MAX_JOINED_CHARS = 32  # longest letter-spaced window joined into one token; longer than any listed name
MIN_FUZZY_LETTERS = 5  # one edit is allowed only against terms this long: shorter ones have too many neighbours
MIN_DISGUISED_FUZZY_LETTERS = 3  # ... or this long inside a chunk that is visibly disguised ("s#x", "p%rn")
MAX_HIDDEN_LETTERS = 2  # masks a chunk pattern may read as hidden letters ("nip#l_s")
MIN_PATTERN_STEM = 4  # a stem* term a chunk pattern may begin with: shorter stems are begun by too much
_PATTERN_ENDINGS = ("s", "es", "ed", "d", "ing", "ings", "er", "ers", "ly")  # inflections a pattern may show
MAX_REMEMBERED_FORMS = 50_000  # readings kept per memory of a list (≈150 bytes each); forgotten all at once when full
_NOTHING: frozenset[Term] = frozenset()  # the reading of a form that reads as no term, kept once for all of them


def _dedouble(text: str) -> str:
    """Collapse every run of a repeated character: "bloooody" → "blody"."""
    return _REPEAT_RE.sub(_first, text) if _REPEAT_RE.search(text) else text


def _squeeze_triples(text: str) -> str:
    """Shorten every run of three or more of a character to two: "bloooody" → "bloody"."""
    return _TRIPLE_RE.sub(lambda run: _first(run) * 2, text) if _TRIPLE_RE.search(text) else text


def _first(run: re.Match[str]) -> str:
    """The repeated character of a run (a replacement function: faster than the template "\\1" in re.sub)."""
    return run.group(1)


# What an inflection adds to a stem: plurals, verb forms, comparatives, adverbs (not "-ant", "-ion", "-ness").
_INFLECTIONS = frozenset({"", "s", "es", "e", "d", "ed", "ing", "ings", "er", "ers", "est", "ly", "ies", "ied",
                          "ier", "iest"})
_LONGEST_INFLECTION = max(map(len, _INFLECTIONS))
# The endings a word may add to the word it inflects (`_bases`): "e" alone is none, and "ies", "ier" and the like are
# "es", "er" after a y turned i ("sexier" is sexy + er, "spicier" spicy + er). Those of _VOWEL_ENDINGS drop a final e
# or double a final consonant; "es" follows a hiss.
_BASE_ENDINGS = frozenset({"s", "es", "d", "ed", "ing", "ings", "er", "ers", "est", "ly"})
_VOWEL_ENDINGS = frozenset({"ed", "ing", "ings", "er", "ers", "est"})
_HISSING = ("s", "x", "z", "ch", "sh", "o")


def _inflection_stem(word: str) -> str | None:
    """word's Snowball stem when word is that stem plus an inflection ("stabs" → "stab", "retardant" → None)."""
    stemmed = stem(word)
    rest = word[len(stemmed):] if word.startswith(stemmed) else word[len(stemmed) - 1:]
    if rest[:1] and stemmed and rest[0] == stemmed[-1]:
        rest = rest[1:]  # a doubled final consonant: "stabbing"
    return stemmed if rest in _INFLECTIONS else None


def _stems_within(stems: dict[str, set[Term]]) -> dict[str, frozenset[Term]]:
    """Every prefix of a stem → the stem* terms whose stem is a prefix of it ("nipp" → nip*, if listed)."""
    within: dict[str, frozenset[Term]] = {}
    for text in stems:
        for length in range(1, len(text) + 1):
            prefix = text[:length]
            within[prefix] = frozenset().union(*(stems.get(prefix[:i], ()) for i in range(1, length + 1)))
    return within


def _by_shape(texts: Iterable[str]) -> dict[tuple[str, int], list[str]]:
    """(first letter, length) → the texts one edit from a form of that shape may be: an edit keeps the first letter
    and changes the length by one at most."""
    shapes: dict[tuple[str, int], list[str]] = defaultdict(list)
    for text in texts:
        for length in (len(text) - 1, len(text), len(text) + 1):
            shapes[text[0], length].append(text)
    return dict(shapes)


def _one_edit(form: str, by_shape: dict[tuple[str, int], list[str]]) -> list[str]:
    """The texts within one edit (optimal string alignment) of form, among those of its shape (`_by_shape`),
    compared in rapidfuzz's loop."""
    candidates = by_shape.get((form[0], len(form)))
    if not candidates:
        return []
    return [text for text, _, _ in process.extract(form, candidates, scorer=OSA.distance, score_cutoff=1, limit=None)]


def _bases(word: str) -> set[str]:
    """The words that word may inflect, by the English spelling rules: "elections" → election, "massacring" →
    massacre, "stabbing" → stab, "bodies" → body, "boxes" → box. A word is no inflection of what an ending the
    rules would not write leaves: "spice" (+ e), "spices" (+ es after no hiss), "raps" (+ s after a dropped e) and
    "spiced" (where "spice" is the word it inflects) do not read as "spic" or "rape"."""
    bases = set()
    for size in range(1, min(_LONGEST_INFLECTION, len(word) - 3) + 1):
        ending, base = word[-size:], word[:-size]
        if ending not in _BASE_ENDINGS:
            continue
        if base.endswith("i"):
            bases.add(base[:-1] + "y")
        if ending == "es" and not base.endswith(_HISSING):
            continue  # "spices" is spice + s, which the ending "s" reads
        if ending not in _VOWEL_ENDINGS:
            bases.add(base)
        elif is_english_word(base + "e"):
            bases.add(base + "e")  # a dropped e: "raped", "massacring", "spiced" (never "spic")
        else:
            bases.add(base)
            if base[-1] == base[-2]:
                bases.add(base[:-1])  # a doubled consonant: "stabbing"
    return bases


def _look_alikes(form: str) -> list[str]:
    """form, then with Latin letter groups that imitate another letter read as it ("nvde", "porrn" → "pom")."""
    variants = [form]
    for seen, meant in (("v", "u"), ("rn", "m"), ("vv", "w"), ("cl", "d")):
        if seen in form:
            variants.append(form.replace(seen, meant))
    return variants


class _Slot(NamedTuple):  # a tuple: a prompt makes hundreds, and a frozen dataclass is slower to build
    """A token, a disguised chunk, a window of single letters or two joined tokens, over positions [start, end)."""

    start: int
    end: int
    terms: frozenset[Term]
    strict: frozenset[Term] = frozenset()  # read as written (exact, stem*, inflection): what the allowlist needs
    in_phrase_only: bool = False  # two common words joined ("foot age"): only as a word of a longer phrase


@dataclass(frozen=True)
class _Rule:
    """One ' + ' part of an entry as a term sequence; a joined phrase is a second rule with a single term."""

    entry: DenylistEntry
    part: int
    terms: tuple[Term, ...]


class _Hit(NamedTuple):
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


class _Terms:
    """Every listed term, indexed for each way a token may read as it."""

    def __init__(self, terms: Iterable[Term], remembered: int = MAX_REMEMBERED_FORMS) -> None:
        self.remembered = remembered  # readings kept per memory
        self.words: dict[str, set[Term]] = defaultdict(set)
        self.stems: dict[str, set[Term]] = defaultdict(set)  # prefix → its stem* term
        self.by_stem: dict[str, set[Term]] = defaultdict(set)
        self.by_dedoubled: dict[str, set[Term]] = defaultdict(set)  # squeezed word → it: "x" → xxx, "nude" → nude
        self.by_text: dict[str, set[Term]] = defaultdict(set)  # a word and a stem* may share their text ("fake")
        for term in set(terms):
            text, is_stem = term
            (self.stems if is_stem else self.words)[text].add(term)
            stemmed = _inflection_stem(text) if not is_stem else stem(text)
            if stemmed:
                self.by_stem[stemmed].add(term)
            if not is_stem:
                self.by_dedoubled[_dedouble(text)].add(term)
            if len(text) >= MIN_DISGUISED_FUZZY_LETTERS:
                self.by_text[text].add(term)
        # the texts of the terms, and of the stem* terms, that one edit may reach, by the shape of the form
        self.by_shape = _by_shape(self.by_text)
        self.stems_by_shape = _by_shape(text for text, found in self.by_text.items() if (text, True) in found)
        self.stem_lengths = sorted({len(text) for text in self.stems})
        self.stem_prefixes = _stems_within(self.stems)  # every prefix of a stem → the stem* terms within it
        self.squeezed_stems: dict[str, set[Term]] = defaultdict(set)  # "nipple" → "niple": for "nnipplles"
        for text, found in self.stems.items():
            self.squeezed_stems[_dedouble(text)].update(found)
        self.squeezed_stem_prefixes = _stems_within(self.squeezed_stems)
        squeezed = {_dedouble(text) for text, _ in set(terms)}
        self.prefixes = {text[:i] for text in squeezed for i in range(1, len(text) + 1)}  # = squeezed prefixes
        self.trie = TermTrie(set().union(*self.words.values(), *self.stems.values()))  # for chunk patterns
        self._patterns: dict[tuple[str, ...], frozenset[Term]] = {}

        # the prefix lengths one edit from a stem's length: a prefix of a token may be a stem with one typo
        self.prefix_lengths = {n for length in self.stem_lengths for n in (length - 1, length, length + 1) if n >= 2}
        self.longest_prefix = max(self.prefix_lengths, default=0)
        # lengths past which a reading cannot find a term (the windows over a letter run grow to MAX_JOINED_CHARS):
        # an inflection or a base is at most _LONGEST_INFLECTION + 1 letters shorter than its token
        self.longest_word = max(map(len, self.words), default=0)
        self.longest_stemmed = max(map(len, self.by_stem), default=0)
        self._readings: dict[tuple[str, bool, bool], frozenset[Term]] = {}  # form, disguised, joined → terms
        self._near_forms: dict[str, frozenset[Term]] = {}
        self._prefix_readings: dict[str, frozenset[Term]] = {}
        self._strict_readings: dict[str, frozenset[Term]] = {}

    def _prefix_terms(self, form: str, *, squeezed: bool = False) -> frozenset[Term]:
        """The stem* terms whose stem (squeezed, for a squeezed form) begins form: those within form's longest
        prefix that some stem begins with."""
        prefixes = self.squeezed_stem_prefixes if squeezed else self.stem_prefixes
        longest = ""
        for length in range(1, len(form) + 1):
            if form[:length] not in prefixes:
                break
            longest = form[:length]
        return prefixes.get(longest, frozenset())

    def _fuzzy(self, form: str, disguised: bool, prefixes: bool) -> set[Term]:
        """Terms one edit away from form (for stems, from a prefix of form when `prefixes`), first letters equal."""
        least = MIN_DISGUISED_FUZZY_LETTERS if disguised else MIN_FUZZY_LETTERS
        near = self._near(form) | self._near_prefixes(form) if prefixes else self._near(form)
        return {term for term in near if len(term[0]) >= least}

    def _near_prefixes(self, form: str) -> frozenset[Term]:
        """The stem* terms within one edit of a proper prefix of form (of two letters or more); remembered for each
        prefix, so that a window one letter longer than the last costs one step."""
        form = form[:self.longest_prefix + 1]  # longer prefixes than that are one edit from no stem
        found = self._prefix_readings.get(form)
        if found is not None:
            return found
        start = len(form) - 1
        while start > 2 and form[:start] not in self._prefix_readings:
            start -= 1
        found = self._prefix_readings.get(form[:start], frozenset())
        for length in range(start, len(form)):  # form[:length + 1] adds its proper prefix of this length
            near = _one_edit(form[:length], self.stems_by_shape) if length in self.prefix_lengths else None
            if near:
                found = found | {(text, True) for text in near}
            self._remember(self._prefix_readings, form[:length + 1], found)
        return found

    def _near(self, form: str) -> frozenset[Term]:
        """The terms within one edit (optimal string alignment) of form with its first letter: those of its first
        letter and a length within one of its own, compared in rapidfuzz's loop; remembered."""
        found = self._near_forms.get(form)
        if found is None:
            near = _one_edit(form, self.by_shape)
            found = frozenset().union(*(self.by_text[text] for text in near)) if near else frozenset()
            self._remember(self._near_forms, form, found)
        return found

    def match_pattern(self, units: tuple[str, ...]) -> frozenset[Term]:
        """The terms a chunk pattern (normalise.chunk_pattern) spells, a mask standing for one letter or none: as a
        whole word, a stem* prefix, or a word plus an inflection; remembered. A pattern must start with a letter it
        shows and hide at most one letter in three (two at most), so that "n**" never reads as anything."""
        found = self._patterns.get(units)
        if found is None:
            found = self._remember(self._patterns, units, frozenset(self._match_pattern(units)))
        return found

    def _match_pattern(self, units: tuple[str, ...]) -> set[Term]:
        hidden = units.count(WILDCARD)
        shown = len(units) - hidden
        if shown < 2 or units[0] == WILDCARD or hidden > min(MAX_HIDDEN_LETTERS, max(1, shown // 2)):
            return set()
        # the whole pattern, or the pattern less a shown inflection, with or without an "e": "t o r t [u] r i n g"
        # → tortur, torture
        bases = frozenset(len(units) - len(ending) for ending in _PATTERN_ENDINGS
                          if len(units) - len(ending) >= 3 and units[-len(ending):] == tuple(ending))
        return self.trie.match(units, ends=bases | {len(units)}, ends_before_e=bases, min_stem=MIN_PATTERN_STEM)

    def read_strictly(self, form: str) -> frozenset[Term]:
        """The terms a token matches as written: exactly, as a stem* prefix, or as an inflection (remembered)."""
        found = self._strict_readings.get(form)
        if found is None:
            found = self._remember(self._strict_readings, form, frozenset(self._read_strictly(form)))
        return found

    def read(self, form: str, *, disguised: bool = False, joined: bool = False) -> frozenset[Term]:
        """The terms a token (or a reading of a chunk, or two joined tokens) matches, disguises seen through
        (remembered: most prompts are made of words the gate has read before)."""
        key = (form, disguised, joined)
        found = self._readings.get(key)
        if found is None:
            found = self._remember(self._readings, key, frozenset(self._read(form, disguised, joined)))
        return found

    def _remember(self, memory: dict[Any, frozenset[Term]], key: Any, found: frozenset[Term]) -> frozenset[Term]:
        """Keep a reading; a full memory is forgotten all at once (cheaper than tracking which was used last). Most
        forms read as no term: they share one empty set (each new one takes 216 bytes, most of what a form costs)."""
        if len(memory) >= self.remembered:
            memory.clear()
        memory[key] = found = found or _NOTHING
        return found

    def _read_strictly(self, form: str) -> set[Term]:
        found = set(self.words.get(form, ())) | self._prefix_terms(form)
        if len(form) <= self.longest_stemmed + _LONGEST_INFLECTION + 1:
            stemmed = _inflection_stem(form)
            if stemmed and stemmed != form:
                found.update(self.by_stem.get(stemmed, ()))
        if len(form) <= self.longest_word + _LONGEST_INFLECTION + 1:
            for base in _bases(form):
                found.update(self.words.get(base, ()))
        return found

    def _read(self, form: str, disguised: bool, joined: bool) -> set[Term]:
        if not form:
            return set()
        found = set(self.read_strictly(form))
        if is_english_word(form) or foreign_language(form):
            return found  # a word of English (or of another language) is read as itself only
        dedoubled = _dedouble(form)
        if dedoubled != form:  # letters were repeated: read squeezed ("nudde" → nude, "xxxx" and "xx" → xxx,
            # "nnipplles" → "niples" → nipple*). Never a form without repeats: "x" is no "xxx" with letters dropped
            # (a dropped letter is one edit, allowed only where that is safe: "pusy", "tities")
            found.update(self.by_dedoubled.get(dedoubled, ()))
            found.update(self._prefix_terms(dedoubled, squeezed=True))
        for variant in _look_alikes(_squeeze_triples(form)):
            if variant != form:  # form's own words and stems are read already
                found.update(self.words.get(variant, ()))
                found.update(self._prefix_terms(variant))
            found.update(self._fuzzy(variant, disguised, prefixes=not joined))
        return found


def read_slots(text: str, terms: _Terms) -> tuple[list[_Slot], set[int], list[str], dict[int, Chunk]]:
    """The slots of a prompt, the positions inside a chunk (between the parts of "flame-haired"), the token at each
    position and the disguised chunks by where they begin ("h@ired"); clauses are kept one position apart (an empty
    token) so that phrases never span them."""
    slots: list[_Slot] = []
    inside: set[int] = set()
    words: list[str] = []
    disguised: dict[int, Chunk] = {}
    position = 0
    for clause in clauses(normalise(text)):
        parts: list[str] = []
        found = chunks(clause, is_common_word)
        starts = []
        for chunk in found:
            starts.append(position + len(parts))
            slots.extend(_chunk_slots(chunk, starts[-1], terms))
            inside.update(range(starts[-1] + 1, starts[-1] + len(chunk.parts)))
            if chunk.marked:
                disguised[starts[-1]] = chunk
            parts.extend(chunk.parts)
        slots.extend(_window_slots(parts, position, terms))
        slots.extend(_joined_slots(parts, position, terms))
        slots.extend(_marked_joins(found, starts, terms))
        words.extend(parts)
        words.append("")
        position += len(parts) + 1
    return slots, inside, words, disguised


# participles that end in neither -ed nor -ing and make compound adjectives of nouns ("flame lit", "fur clad")
_IRREGULAR_PARTICIPLES = frozenset({"lit", "clad", "born", "grown", "worn", "made", "built"})


def _spellings(words: list[str], disguised: dict[int, Chunk], position: int) -> Iterable[tuple[str, int, bool]]:
    """The words the text at position may spell, each with the position after it and whether it was disguised: the
    token as written, then read as the listed terms are read: a disguised chunk's leet and mask readings ("h@ired",
    "hugg1ng"), a run of single letters joined ("h a i r e d"), two tokens joined unless both are common words and
    neither a fragment ("hai red"; never "sea bed")."""
    yield words[position], position + 1, False
    chunk = disguised.get(position)
    if chunk is not None:
        yield from ((reading, position + len(chunk.parts), True) for reading in chunk.readings)
    end, joined = position, ""
    while end < len(words) and len(words[end]) == 1 and end - position < MAX_JOINED_CHARS:
        joined, end = joined + words[end], end + 1
        if end - position > 1:
            yield joined, end, True
    left, right = words[position], words[position + 1] if position + 1 < len(words) else ""
    if left and right and (is_fragment(left) or is_fragment(right) or not (is_common_word(left)
                                                                         and is_common_word(right))):
        yield left + right, position + 2, True


def _is_participle(word: str) -> bool:
    """Whether a word may be the later half of a compound adjective: a participle or an -ed adjective of five
    letters or more ("haired", "hugging"), an irregular participle ("lit", "clad"), or an -ed adjective of a part of
    the body of any length ("eyed", lexicon.BODY_ADJECTIVES); shorter -ed words are no compound's half ("red",
    "bed", "fed": "a naked flame red woman" reads no "flame-red")."""
    return (word in _IRREGULAR_PARTICIPLES or word in BODY_ADJECTIVES
            or (len(word) > 4 and word.endswith(("ed", "ing"))))


def _begins_compound(words: list[str], disguised: dict[int, Chunk], position: int) -> int | None:
    """Where the compound adjective ends that the text at position makes of the token before it, written with a
    space, or None: a participle or an -ed adjective ("haired", "hugging", "lit"), read through disguises as the
    person words are ("h@ired", "h a i r e d"; a disguised one must spell an English word), followed by the noun
    the compound describes, a word that is no function word or -ly adverb ("flame haired woman", "tree hugging man";
    not "flame flickering in the dark", "bulb hanging low", "flame burning brightly")."""
    for word, end, hidden in _spellings(words, disguised, position):
        if end >= len(words) or not _is_participle(word) or (hidden and not is_english_word(word)):
            continue
        described = words[end]
        if described and not (is_function_word(word) or is_function_word(described) or described.endswith("ly")):
            return end
    return None


def _is_plural(word: str) -> bool:
    """Whether a noun is written in the plural ("trees", "branches", "bulbs"; not "glass"): the first word of a
    compound is singular ("a tree-hugging man", "a tree hugger"), so a plural before a participle is the subject of
    its verb ("naked trees shading children"), not half of a compound adjective."""
    return len(word) > 3 and word.endswith("s") and not word.endswith("ss") and stem(word) != word


def _compound_end(words: list[str], inside: set[int], disguised: dict[int, Chunk], position: int) -> int | None:
    """Where the compound ends whose later part the word at position is or begins: the end of its chunk
    ("flame-haired"), or the end of the compound it makes with the word before it, written with a space and read
    through disguises (`_begins_compound`; never after a plural: "trees shading"); None when it begins none."""
    if position in inside:
        while position in inside:
            position += 1
        return position
    if _is_plural(words[position - 1]):
        return None
    return _begins_compound(words, disguised, position)


# the endings of agent nouns, which make a noun compound with the noun before them ("tree hugger", "flame dancer",
# "sun bather"), where a noun naming a person by other means makes none ("naked wire figure", "bloody mary waitress")
_AGENT_ENDINGS = ("er", "or")


def _heads_noun_compound(words: list[str], start: int, position: int) -> bool:
    """Whether the phrase of two words or more from start to position ends in a singular noun that the word at
    position may head a noun compound with, written with a space ("naked tree hugger", as "naked tree-hugger"):
    the listed word before it ("naked") then describes the compound's head when that is an agent noun naming a
    person (`_AGENT_ENDINGS`), not the noun the phrase names. Only a word ending as one may ("hugger", "hugg3rs"):
    the others' person words are not read."""
    return (position - start > 1 and position < len(words) and words[position].endswith(("r", "rs"))
            and not is_function_word(words[position]) and not _is_plural(words[position - 1]))


# how many words after a compound adjective the person it describes may stand: "a naked flame haired woman", "a naked
# flame haired young woman", "a naked flame haired pale young woman"
PERSON_REACH = 3
PERSON_REMEMBERED_FORMS = 10_000  # readings the person words' one reader (all lists share it) keeps per memory


@functools.cache
def _person_terms() -> _Terms:
    """The person words (lexicon.PERSON_WORDS) as terms, read through inflections and disguises as listed terms are."""
    return _Terms([(word, False) for word in PERSON_WORDS], PERSON_REMEMBERED_FORMS)


def _person_starts(text: str) -> dict[int, set[str]]:
    """The positions in text where a word naming a person begins ("woman", "girls", "w0man", "g i r l"), each with
    the person words read there."""
    starts: dict[int, set[str]] = defaultdict(set)
    for slot in read_slots(text, _person_terms())[0]:
        if slot.terms:
            starts[slot.start].update(word for word, _ in slot.terms)
    return starts


def _chunk_slots(chunk: Chunk, start: int, terms: _Terms) -> list[_Slot]:
    found = [_Slot(start + i, start + i + 1, terms.read(part), terms.read_strictly(part))
             for i, part in enumerate(chunk.parts)]
    if chunk.marked:
        if chunk.innocent:  # common words joined by marks: their readings as written, no edit ("go-re", "se><")
            read = set().union(*(terms.read_strictly(r) for r in chunk.readings))
        else:
            read = set().union(*(terms.read(r, disguised=True) for r in chunk.readings))
        read |= terms.match_pattern(chunk.pattern)
        found.append(_Slot(start, start + len(chunk.parts), frozenset(read)))
    return found


def _marked_joins(found: list[Chunk], starts: list[int], terms: _Terms) -> list[_Slot]:
    """Two neighbouring chunks read as one word when either is marked: a split word with a mask or leet letters in
    it ("ni'pp les", "zuck &rbe®9", "ku |{ lv>< klan")."""
    slots = []
    for i in range(len(found) - 1):
        left, right = found[i], found[i + 1]
        if left.marked or right.marked:
            read = terms.match_pattern(left.pattern + right.pattern)
            if read:
                slots.append(_Slot(starts[i], starts[i + 1] + len(right.parts), read))
    return slots


def _window_slots(parts: list[str], offset: int, terms: _Terms) -> list[_Slot]:
    """One slot per window (≥ 2) over each run of single-character tokens ("n u d e"); a window grows only while
    some reading of it could still become a listed term, so "a b c d ..." stays linear."""
    found = []
    start = 0
    while start < len(parts):
        end = start
        while end < len(parts) and len(parts[end]) == 1:
            end += 1
        for a in range(start, end):
            joined = squeezed = parts[a]  # squeezed: joined with its repeats collapsed, grown a letter at a time
            begun = joined in terms.stems  # a stem begins the window, and so every longer one
            for b in range(a + 2, min(end, a + MAX_JOINED_CHARS) + 1):
                letter = parts[b - 1]
                squeezed += letter if letter != joined[-1] else ""
                joined += letter
                begun = begun or joined in terms.stems
                if not (begun or squeezed in terms.prefixes):
                    break
                found.append(_Slot(offset + a, offset + b, terms.read(joined, disguised=True)))
        start = end + 1
    return found


def _joined_slots(parts: list[str], offset: int, terms: _Terms) -> list[_Slot]:
    """Two neighbouring tokens read as one word ("nu de", "mas sacre"). Two common words are read as written only,
    and as a word on its own only when one is a two-letter fragment ("go re", "bid en"; not "pen is", "put in"),
    else only inside a longer phrase ("real foot age"); a word that stands alone ("a", "at", "of") joined to another
    is read as written only, with no edit, but on its own ("mole st" is "molest"; "moles at" is not)."""
    found = []
    for i in range(len(parts) - 1):
        left, right = parts[i], parts[i + 1]
        if not left or not right:
            continue
        if is_common_word(left) and is_common_word(right):
            read = terms.read_strictly(left + right)
            alone = is_fragment(left) or is_fragment(right)
        elif stands_alone(left) or stands_alone(right):  # "moles at" is no "molest" less an "a", "a gore" no "al gore"
            read, alone = terms.read_strictly(left + right), True
        else:
            read, alone = terms.read(left + right, joined=True), True
        if read:
            found.append(_Slot(offset + i, offset + i + 2, read, in_phrase_only=not alone))
    return found


class _Index:
    """Rules keyed by their first term, so a prompt costs a lookup per slot term, not a scan of the list."""

    def __init__(self, entries: Iterable[DenylistEntry]) -> None:
        self.first: dict[Term, list[_Rule]] = defaultdict(list)
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

    def _add(self, rule: _Rule) -> None:
        self.terms.update(rule.terms)
        self.first[rule.terms[0]].append(rule)

    def hits(self, slots: list[_Slot], *, strict: bool = False) -> list[_Hit]:
        """Every rule occurrence in the prompt's slots (read as written only, when `strict`)."""
        starts = [(slot, rules) for slot in slots for term in (slot.strict if strict else slot.terms)
                  if (rules := self.first.get(term))]
        if not starts:  # most prompts: no listed term begins a rule anywhere
            return []
        by_start: dict[int, list[_Slot]] = defaultdict(list)
        for slot in slots:
            by_start[slot.start].append(slot)
        hits = set()
        memo: dict[tuple[tuple[Term, ...], int], int | None] = {}
        for slot, rules in starts:
            for rule in rules:
                if slot.in_phrase_only and len(rule.terms) == 1:
                    continue
                end = _phrase_end(by_start, rule.terms[1:], slot.end, strict, memo)
                if end is not None:
                    hits.add(_Hit(rule.entry, rule.part, slot.start, end))
        return list(hits)


def _phrase_end(by_start: dict[int, list[_Slot]], terms: tuple[Term, ...], start: int, strict: bool,
                memo: dict[tuple[tuple[Term, ...], int], int | None]) -> int | None:
    """The token position where the remaining terms end when they follow on from start, else None. Each answer is
    remembered for the prompt (`memo`): overlapping slots (a letter-spaced run read as words of many lengths) made a
    phrase try every way of reading the prompt, exponentially many, for seconds on one prompt."""
    if not terms:
        return start
    if (terms, start) in memo:
        return memo[terms, start]
    found = None
    for slot in by_start.get(start, ()):
        if terms[0] in (slot.strict if strict else slot.terms):
            found = _phrase_end(by_start, terms[1:], slot.end, strict, memo)
            if found is not None:
                break
    memo[terms, start] = found
    return found


def _is_compound(pattern: str) -> bool:
    """Whether an allowlist pattern is one compound: written with its hyphens ("gore-tex"), or a phrase that English
    also writes as one word ("pussy cat", as "pussycat"), a noun whose listed word is a part of it, never an adjective
    that a compound after it could leave describing the next noun (not "naked flame": "nakedflame" is no word)."""
    words = pattern.rstrip("*").split()
    return ("-" in pattern and len(words) == 1) or (len(words) > 1 and is_english_word("".join(words)))


def _specificity(entry: DenylistEntry) -> tuple[int, str]:
    """Longer patterns are more specific: "heil hitler" is reported rather than "hitler"."""
    return len(entry.pattern), entry.pattern


class Denylist:
    """A compiled list of deny and allow entries; build it again when moderators edit the entries."""

    def __init__(self, entries: Iterable[DenylistEntry], *, remembered: int = MAX_REMEMBERED_FORMS) -> None:
        """Compile entries (from the database or load_default_entries()); ValueError names a malformed one.
        `remembered`: readings kept per memory of the list (five memories, ≈150 bytes a reading)."""
        entries = list(dict.fromkeys(entries))
        self.entries = tuple(entries)
        self._deny = _Index(e for e in entries if e.kind == "deny")
        self._allow = _Index(e for e in entries if e.kind == "allow")
        self._compounds = frozenset(e for e in entries if e.kind == "allow" and _is_compound(e.pattern))
        self._terms = _Terms(self._deny.terms | self._allow.terms, remembered)

    def explain(self, text: str) -> DenylistReport:
        """Which entries fire on text, for the refusal and for the moderators' 'denylist test' command."""
        slots, inside, words, disguised = read_slots(text, self._terms)
        # a disguise never makes text innocent, nor a phrase that begins inside a compound ("a half-naked flame") or
        # ends where a compound begins that describes a person: in "a naked flame-haired woman" and "a naked flame
        # haired woman" the listed word describes the woman, not a flame
        allow_hits = self._protecting(self._allow.hits(slots, strict=True), text, inside, words, disguised)
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

    def _protecting(self, hits: list[_Hit], text: str, inside: set[int], words: list[str],
                    disguised: dict[int, Chunk]) -> list[_Hit]:
        """The allowlist hits that protect: those that begin no compound's later part, and do not end where a compound
        begins ("flame-haired", "flame haired") that describes a person, unless their entry is itself one compound
        ("gore-tex", whose words never part: "a gore-tex-lined jacket")."""
        protecting = []
        persons: dict[int, set[str]] | None = None  # where words naming a person begin, read only when needed
        for hit in hits:
            if hit.start in inside:
                continue
            end = None if hit.entry in self._compounds else _compound_end(words, inside, disguised, hit.end)
            if end is not None:
                persons = _person_starts(text) if persons is None else persons
                if any(hit.end <= start < end + PERSON_REACH and "" not in words[hit.end:start] for start in persons):
                    continue
            elif hit.entry not in self._compounds and _heads_noun_compound(words, hit.start, hit.end):
                persons = _person_starts(text) if persons is None else persons
                if any(word.endswith(_AGENT_ENDINGS) for word in persons.get(hit.end, ())):
                    continue  # "a naked tree hugger": the person heads the compound
            protecting.append(hit)
        return protecting

    def match(self, text: str) -> DenylistEntry | None:
        """The most specific deny entry that fires on text, or None."""
        denied = self.explain(text).denied
        return denied[0] if denied else None

