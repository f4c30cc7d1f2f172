"""Word knowledge the policy reads with: which tokens are English words, their stems, and words of other languages.

- English words: pyspellchecker's English frequency list. A token that is an English word is read as itself only:
  the matcher never joins two English words ("pen is"), never squeezes one ("bobs" stays "bobs", not "boobs"), and
  never allows it an edit ("nudge" is not "nude").
- Stems: the Snowball (Porter 2) English stemmer, so inflections match by rule ("nudes", "massacring", "shootings");
  snowballstemmer runs PyStemmer's C build of it when installed (the same stems, seven times faster).
- Other languages: pyspellchecker's Spanish, French, German, Italian, Portuguese and Dutch lists, for the rule
  that every word the model conditions on is English (bot.moderation.policy.language). A word that English has
  borrowed ("noir", "cafe", "bonjour") is English: it is in pyspellchecker's English list at any count, or in
  simplemma's English dictionary (drawn from Wiktionary, which lists loanwords).

The lists are built from those libraries by tools/policy_words.py into words.txt beside this module (its header
names the versions and thresholds), and read once per process on first use: a gate is cheap to build.
"""

from __future__ import annotations

import functools
import logging
from importlib import resources
from typing import NamedTuple

import snowballstemmer

log = logging.getLogger(__name__)

WORDS_FILE = "words.txt"


class _Words(NamedTuple):
    english: frozenset[str]  # count >= 100 in pyspellchecker's English list
    common: frozenset[str]  # count >= 5000: never read as the halves of a split word ("pen is", "foot age")
    borrowed: frozenset[str]  # common words of another language that English has too, rarely ("cafe", "fresco")
    foreign: dict[str, str]  # word -> the language it is a common word of, for words English does not have


@functools.cache
def _words() -> _Words:
    """words.txt, read once per process: '#' comment lines, then '[section]' headers each followed by its words."""
    text = resources.files(__package__).joinpath(WORDS_FILE).read_text(encoding="utf-8")
    sections = {}
    for block in text.split("\n[")[1:]:
        name, _, words = block.partition("]\n")
        sections[name] = words.split()
    english, common, borrowed = sections.pop("english"), sections.pop("common"), sections.pop("borrowed")
    foreign: dict[str, str] = {}
    for language, words in sections.items():
        foreign.update(dict.fromkeys(words, language))
    log.info("word lists loaded: %d English words, %d of %s", len(english), len(foreign), ", ".join(sections))
    return _Words(frozenset(english), frozenset(common), frozenset(borrowed), foreign)


def load() -> None:
    """Read the word lists now rather than on first use."""
    _words()


def is_english_word(token: str) -> bool:
    """True when token (normalised, lower case) is a common English word."""
    return token in _words().english


def is_borrowed(token: str) -> bool:
    """True when token (normalised, lower case) is a word English has borrowed from another language ("cafe")."""
    return token in _words().borrowed


def is_common_word(token: str) -> bool:
    """True when token is a common English word (of two letters or more): it stands on its own in a prompt."""
    return len(token) > 1 and token in _words().common


# English's two-letter words that stand alone (function words, "go", interjections): their neighbours are words, not
# fragments of one ("pen is", "put in", "go ok").
WORDS_OF_TWO = frozenset({"ah", "am", "an", "as", "at", "be", "by", "do", "go", "ha", "he", "hi", "if", "in", "is",
                          "it", "me", "my", "no", "of", "oh", "ok", "on", "or", "so", "to", "up", "us", "we", "yo"})


def stands_alone(token: str) -> bool:
    """True when token is a word of one or two letters that stands alone ("a", "i", "at", "of"): joined to a
    neighbour it makes a word only as written, never with an edit ("moles at" is no "molest")."""
    return token in WORDS_OF_TWO or token in ("a", "i")


# English's closed-class words of three letters or more (determiners, pronouns, prepositions, conjunctions, auxiliaries)
# and the adverbs that follow a verb of place or manner: after a participle they show it is a verb ("a flame burning
# in the dark", "a bulb hanging low"), not half of a compound adjective before its noun ("flame haired woman").
FUNCTION_WORDS = frozenset({"the", "and", "but", "nor", "for", "yet", "not", "all", "any", "both", "each", "every",
                            "few", "many", "more", "most", "much", "some", "such", "this", "that", "these", "those",
                            "her", "his", "its", "our", "their", "your", "mine", "ours", "theirs", "yours", "him",
                            "she", "they", "them", "you", "who", "whom", "whose", "which", "what", "where", "when",
                            "while", "whilst", "why", "how", "than", "then", "there", "here", "thus", "also", "very",
                            "too", "just", "only", "even", "still", "again", "ever", "never", "now", "soon", "are",
                            "was", "were", "been", "being", "has", "had", "have", "having", "does", "did", "done",
                            "can", "could", "may", "might", "must", "shall", "should", "will", "would", "about",
                            "above", "across", "after", "against", "along", "alongside", "amid", "among", "around",
                            "atop", "before", "behind", "below", "beneath", "beside", "besides", "between", "beyond",
                            "down", "during", "except", "from", "inside", "into", "near", "onto", "out", "outside",
                            "over", "past", "per", "since", "through", "throughout", "till", "toward", "towards",
                            "under", "underneath", "until", "upon", "with", "within", "without", "off", "away", "back",
                            "together", "alone", "apart", "aside", "overhead", "low", "high", "deep", "far", "forward",
                            "forwards", "downward", "upward", "like", "unlike", "via", "according", "including",
                            "following", "regarding", "concerning", "despite"})


def is_function_word(token: str) -> bool:
    """True when token is a closed-class word of English ("a", "at", "the", "over", "while") or an adverb of place
    that follows a verb ("away", "low"): never the noun that a compound adjective before it describes."""
    return stands_alone(token) or token in FUNCTION_WORDS


# Nouns that name a person (or a person's body), minors among them; the denylist reads their inflections and
# disguises ("girls", "w0man") as it reads its terms. A compound adjective before one of them ("a naked flame haired
# woman", "a naked tree hugging man") leaves the listed word before the compound describing the person, not the
# thing an allowed phrase names ("a naked flame lit candles"). By what they name a person by: sex and age, kinship,
# looks and the epithets of a sexualised prompt ("vixen", "hunk"), and the roles prompts dress a person in. Hand-picked,
# not exhaustive: a person named by a word not listed here ("a naked tree hugging sprinter") is not seen, unless the
# compound gives its noun a body (BODY_ADJECTIVES: "a naked flame haired sprinter").
PERSON_NOUNS = frozenset({
    # sex and age
    "woman", "women", "man", "men", "girl", "boy", "lady", "gentleman", "gentlemen", "guy", "gal", "lad", "lass",
    "lassie", "dude", "bloke", "chap", "fellow", "maiden", "damsel", "dame", "wench", "teen", "teenager", "preteen",
    "tween", "adolescent", "youth", "youngster", "child", "children", "kid", "kiddo", "baby", "toddler", "infant",
    "newborn", "minor", "schoolgirl", "schoolboy", "schoolchild", "schoolchildren", "student", "pupil", "couple",
    "person", "people", "human", "adult", "female", "male",
    # kinship and partners
    "daughter", "son", "sister", "brother", "mother", "father", "mom", "mum", "dad", "wife", "wives", "husband",
    "bride", "groom", "girlfriend", "boyfriend", "fiancee", "fiance", "spouse", "widow", "widower", "aunt", "uncle",
    "niece", "nephew", "cousin", "grandma", "granny", "grandmother", "grandpa", "grandfather", "stepmom",
    "stepmother", "stepdaughter", "stepsister", "stepson", "stepbrother", "stepdad", "stepfather", "housewife",
    "mistress", "lover", "stranger", "neighbour", "neighbor", "roommate", "classmate",
    # looks, and the epithets of a sexualised prompt
    "blonde", "blond", "brunette", "redhead", "beauty", "babe", "hottie", "bombshell", "stunner", "vixen", "minx",
    "temptress", "seductress", "nymph", "nymphet", "goddess", "belle", "diva", "starlet", "milf", "bimbo", "hunk",
    "twink", "figure", "body",
    # roles a prompt dresses a person in
    "model", "actress", "actor", "dancer", "ballerina", "showgirl", "cheerleader", "gymnast", "athlete", "swimmer",
    "sunbather", "bather", "bodybuilder", "nurse", "maid", "waitress", "stewardess", "secretary", "masseuse",
    "teacher", "nun", "princess", "empress", "priestess", "cowgirl", "mermaid", "soldier", "escort", "prostitute",
    "hooker", "courtesan", "concubine", "geisha", "hippie", "hugger"})

# The -ed adjectives a noun makes of a part of the body ("flame haired", "olive skinned", "long legged"): the compound
# gives the noun after it a body, so a listed word before the compound describes a being, whatever names it ("a
# naked flame haired vixen"). Not those that are also common verbs ("headed", "handed", "faced", "armed", "lashed":
# "the naked flame headed north").
BODY_ADJECTIVES = frozenset({"haired", "eyed", "skinned", "lipped", "breasted", "bosomed", "chested", "bellied",
                             "legged", "limbed", "hipped", "thighed", "bodied", "cheeked", "browed", "bearded",
                             "freckled"})

# What shows that a compound adjective describes a person: a noun naming one, or a body the compound gives its noun.
PERSON_WORDS = PERSON_NOUNS | BODY_ADJECTIVES


def is_fragment(token: str) -> bool:
    """True when token is two letters long and not a word that stands alone ("re", "en", "ad"): beside a common
    word it may be the rest of a split one ("go re", "bid en")."""
    return len(token) == 2 and token not in WORDS_OF_TWO


def foreign_language(token: str) -> str | None:
    """The language a token (normalised, lower case) is a common word of, when English does not have it at all."""
    return _words().foreign.get(token)


_STEMMER = snowballstemmer.stemmer("english")


@functools.lru_cache(maxsize=16384)
def stem(token: str) -> str:
    """The Porter 2 stem of a token: "massacring" → "massacr", "nudes" → "nude"."""
    return _STEMMER.stemWord(token)
