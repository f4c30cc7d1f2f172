"""Build the policy's word lists: `python tools/policy_words.py` rewrites bot/moderation/policy/words.txt.

The gate reads with three sets of words (bot/moderation/policy/lexicon.py says how): English words, common English
words, and common words of six other Latin-script languages that are not English. Building them from the libraries
takes seconds and loads hundreds of megabytes of frequency lists, so they are built here once, with the library
versions written in the file's header, and the bot loads the small result. Needs the dev extra (pyspellchecker,
simplemma); run it again after upgrading either and commit the new file.
"""

from __future__ import annotations

import unicodedata
from importlib.metadata import version
from pathlib import Path

from simplemma import is_known
from spellchecker import SpellChecker
from wordfreq import top_n_list, zipf_frequency

OUT = Path(__file__).resolve().parents[1] / "bot" / "moderation" / "policy" / "words.txt"

ENGLISH_MIN_COUNT = 100  # below this count a "word" of the English list is usually a misspelling or a name
COMMON_MIN_COUNT = 5000  # words this common are never read as the halves of a split word ("pen is", "foot age")
FOREIGN_LANGUAGES = ("es", "fr", "de", "it", "pt", "nl")  # the Latin-script languages pyspellchecker ships
FOREIGN_MIN_COUNT = 1000  # a word at least this common in another language reads as that language's word
BORROWED_MIN_ZIPF = 3.0  # a borrowed word is written in English at least once a million words ("cafe"; not "perro")
GERMAN_TOP = 20_000  # German's most frequent words in wordfreq that read as German (see common_words)


def counts(language: str) -> dict[str, int]:
    """pyspellchecker's frequency list for a language: word → count in its corpus."""
    return dict(SpellChecker(language=language, distance=1).word_frequency.dictionary)


def common_words(language: str) -> list[str]:
    """A language's common words: count >= FOREIGN_MIN_COUNT in pyspellchecker's list; for German, whose list
    counts most words 50 (only 2,930 reach 1,000), also those of its words among wordfreq's GERMAN_TOP most
    frequent (not web tokens like "https", chat spellings like "sooo" or acronyms like "html"), accents dropped as
    the gate looks them up ("Mädchen" → "madchen")."""
    listed = counts(language)
    words = [word for word, count in listed.items() if count >= FOREIGN_MIN_COUNT]
    if language == "de":
        words += [strip_accents(word) for word in top_n_list("de", GERMAN_TOP)
                  if word in listed and any(vowel in word for vowel in "aeiouyäöü")]  # no acronym ("html")
    return words


def strip_accents(word: str) -> str:
    """Accents dropped, case folded, as the gate reads a word."""
    return "".join(c for c in unicodedata.normalize("NFKD", word) if unicodedata.category(c) != "Mn").casefold()


def foreign_words(english: dict[str, int]) -> tuple[dict[str, list[str]], list[str]]:
    """language → its common words that English does not have at all: not in the English list at any count (a
    loanword is there, rarely) nor in simplemma's English dictionary (from Wiktionary, which lists loanwords); and
    the common words of those languages that English has borrowed and writes often ("cafe", "fresco"; wordfreq's
    English frequency), accents dropped."""
    seen: set[str] = set()
    found: dict[str, list[str]] = {}
    borrowed: set[str] = set()
    for language in FOREIGN_LANGUAGES:
        found[language] = []
        for word in common_words(language):
            if not word.isalpha() or word in seen:
                continue
            seen.add(word)  # a word common in two languages is listed under the first
            if word not in english and not is_known(word, lang="en"):
                found[language].append(word)
            elif zipf_frequency(strip_accents(word), "en") >= BORROWED_MIN_ZIPF:
                borrowed.add(strip_accents(word))
    return found, sorted(borrowed)


def as_read(words: dict[str, int]) -> dict[str, int]:
    """The counts by the form the gate reads a word in, accents dropped ("café" → "cafe"), the larger count kept."""
    read: dict[str, int] = {}
    for word, count in words.items():
        key = strip_accents(word)
        read[key] = max(read.get(key, 0), count)
    return read


def loanwords(english: dict[str, int]) -> set[str]:
    """The words of the English list written with an accent, accents dropped ("piñata" → "pinata", "jalapeño"):
    loanwords English spells that way. pyspellchecker counts none of them in its corpus (each has its floor count,
    50, below ENGLISH_MIN_COUNT), so the count says nothing of how common they are; an accented spelling in an
    English dictionary is no misspelling either, which is what ENGLISH_MIN_COUNT keeps out."""
    return {strip_accents(word) for word in english if not word.isascii()}


def main() -> None:
    english = counts("en")
    read = as_read(english)
    foreign, borrowed = foreign_words(english | read)
    accented = loanwords(english)
    words = [w for w, c in read.items() if c >= ENGLISH_MIN_COUNT or w in accented]
    sections = {
        "english": words,
        "common": [w for w, c in read.items() if c >= COMMON_MIN_COUNT],
        "borrowed": sorted(set(borrowed) - set(words)),
        **foreign,
    }
    header = [
        "# The policy's word lists, read by bot/moderation/policy/lexicon.py. Generated by tools/policy_words.py from",
        f"# pyspellchecker {version('pyspellchecker')}, wordfreq {version('wordfreq')} and simplemma "
        f"{version('simplemma')}: do not edit by hand.",
        f"# [english]: English words, accents dropped (count >= {ENGLISH_MIN_COUNT}, or any count when written with an "
        "accent: \"pinata\");",
        f"# [common]: those with count >= {COMMON_MIN_COUNT};",
        f"# [borrowed]: common words of the languages below that English has too, Zipf >= {BORROWED_MIN_ZIPF} in "
        "wordfreq's English (\"cafe\");",
        f"# [{'], ['.join(FOREIGN_LANGUAGES)}]: words with count >= {FOREIGN_MIN_COUNT} in that language (for German "
        f"also its {GERMAN_TOP}",
        "# most frequent in wordfreq, accents dropped) that English does not have.",
    ]
    lines = list(header)
    for name, words in sections.items():
        lines.append(f"[{name}]")
        lines.extend(sorted(words))
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{OUT}: " + ", ".join(f"{name} {len(words)}" for name, words in sections.items()))


if __name__ == "__main__":
    main()
