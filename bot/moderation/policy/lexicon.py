"""Word knowledge the policy reads with: which tokens are English words, their stems, and words of other languages.

- English words: pyspellchecker's English frequency list. A token that is an English word is read as itself only:
  the matcher never joins two English words ("pen is"), never squeezes one ("bobs" stays "bobs", not "boobs"), and
  never allows it an edit ("nudge" is not "nude").
- Stems: the Snowball (Porter 2) English stemmer, so inflections match by rule ("nudes", "massacring", "shootings").
- Other languages: pyspellchecker's Spanish, French, German, Italian, Portuguese and Dutch lists, for the rule
  that every word the model conditions on is English (bot.moderation.policy.language). A word that English has
  borrowed ("noir", "cafe", "bonjour") is English: it is in pyspellchecker's English list at any count, or in
  simplemma's English dictionary (drawn from Wiktionary, which lists loanwords).

Every list ships inside its package; nothing is downloaded.
"""

from __future__ import annotations

import functools
import logging

import snowballstemmer

log = logging.getLogger(__name__)

ENGLISH_MIN_COUNT = 100  # below this count a "word" of the English list is usually a misspelling or a name
COMMON_MIN_COUNT = 5000  # words this common are never read as the halves of a split word ("pen is", "foot age")
FOREIGN_LANGUAGES = ("es", "fr", "de", "it", "pt", "nl")  # the Latin-script languages pyspellchecker ships
FOREIGN_MIN_COUNT = 1000  # a word at least this common in another language reads as that language's word


@functools.cache
def _english_counts() -> dict[str, int]:
    from spellchecker import SpellChecker

    counts = dict(SpellChecker(language="en", distance=1).word_frequency.dictionary)
    log.info("English word list loaded: %d words", len(counts))
    return counts


@functools.cache
def _english() -> dict[str, int]:
    return {word: count for word, count in _english_counts().items() if count >= ENGLISH_MIN_COUNT}


def _borrowed(token: str) -> bool:
    """True when English has the word at all: rarely (a loanword in the frequency list) or in a dictionary."""
    import simplemma

    return token in _english_counts() or simplemma.is_known(token, lang="en")


@functools.cache
def _foreign() -> dict[str, str]:
    from spellchecker import SpellChecker

    words: dict[str, str] = {}
    for language in FOREIGN_LANGUAGES:
        counts = SpellChecker(language=language, distance=1).word_frequency.dictionary
        for word, count in counts.items():
            if count >= FOREIGN_MIN_COUNT and word.isalpha():
                words.setdefault(word, language)
    log.info("word lists of %s loaded: %d common words", ", ".join(FOREIGN_LANGUAGES), len(words))
    return words


def load() -> None:
    """Load every list now (0.5 s for English, a few seconds for the others) rather than on first use."""
    _english()
    _foreign()
    _borrowed("warm")  # simplemma loads its English dictionary on first use


def is_english_word(token: str) -> bool:
    """True when token (normalised, lower case) is a common English word."""
    return token in _english()


def is_common_word(token: str) -> bool:
    """True when token is a common English word (of two letters or more): it stands on its own in a prompt."""
    return len(token) > 1 and _english().get(token, 0) >= COMMON_MIN_COUNT


def foreign_language(token: str) -> str | None:
    """The language a token (normalised, lower case) is a common word of, when it is not an English word."""
    language = _foreign().get(token)
    return None if language is None or _borrowed(token) else language


_STEMMER = snowballstemmer.stemmer("english")


@functools.lru_cache(maxsize=16384)
def stem(token: str) -> str:
    """The Porter 2 stem of a token: "massacring" → "massacr", "nudes" → "nude"."""
    return _STEMMER.stemWord(token)
