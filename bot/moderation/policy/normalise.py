"""The denylist's normalisation front-end: fold a prompt to plain ASCII tokens and their obfuscation variants.

Pipeline of shared/research/policy-libs.md §3.4: NFKC → drop format characters → strip accents → casefold →
fold homoglyphs (confusable-homoglyphs) → tokens of [a-z0-9@$!|+].
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata

from confusable_homoglyphs import confusables

TOKEN_RE = re.compile(r"[a-z0-9@$!|+]+")
LEET_SYMBOLS = "@$!|+"
# Latin letters that NFKD does not decompose, folded by hand (confusable-homoglyphs leaves them alone).
_LATIN_FOLDS = {"ø": "o", "ł": "l", "đ": "d", "ð": "d", "ħ": "h", "ı": "i", "ŧ": "t", "æ": "ae", "œ": "oe", "þ": "th"}
# Leetspeak readings, most likely first; applied only inside tokens that mix letters with digits/symbols.
_LEET = {
    "0": "o", "1": "il", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g",
    "@": "a", "$": "s", "!": "i", "|": "li", "+": "t",
}
MAX_LEET_FORMS = 8  # cap on the leet readings tried per token: "1" alone has two, tokens rarely need more
_TRIPLE_RE = re.compile(r"([a-z])\1{2,}")
_LETTER_RE = re.compile(r"[a-z]")
_NON_LETTER_RE = re.compile(r"[0-9@$!|+]")


@functools.cache
def fold_letter(char: str) -> str:
    """Map a non-ASCII letter to the ASCII letter(s) it imitates, or return it unchanged."""
    if char in _LATIN_FOLDS:
        return _LATIN_FOLDS[char]
    found = confusables.is_confusable(char, greedy=True, preferred_aliases=["latin"]) or []
    for hit in found:
        for glyph in hit["homoglyphs"]:
            latin = glyph["c"].casefold()
            if latin.isascii() and latin.isalpha():
                return latin
    return char


def strip_accents(text: str) -> str:
    """Decompose (NFKD) and drop the combining marks: "crème brûlée" → "creme brulee"."""
    return "".join(c for c in unicodedata.normalize("NFKD", text) if unicodedata.category(c) != "Mn")


def normalise(text: str) -> str:
    """Fold text so that look-alike, accented, fullwidth and zero-width-split letters read as plain a-z."""
    text = unicodedata.normalize("NFKC", text)
    text = strip_accents("".join(c for c in text if unicodedata.category(c) != "Cf")).casefold()
    return "".join(fold_letter(c) if not c.isascii() and c.isalpha() else c for c in text)


def tokenise(text: str) -> list[str]:
    """Split normalised text into tokens; everything else (spaces, dots, hyphens, emoji) separates them."""
    return TOKEN_RE.findall(text)


def is_mixed(token: str) -> bool:
    """True when a token mixes letters with digits or leet symbols ("p0rn", "$exy"), unlike "1969" or "nude"."""
    return bool(_LETTER_RE.search(token) and _NON_LETTER_RE.search(token))


def leet_forms(token: str) -> list[str]:
    """Up to MAX_LEET_FORMS leetspeak readings of a mixed token ("sw1ft" → "swift", "swlft")."""
    choices = [_LEET.get(c, c) for c in token]
    return ["".join(p) for p in itertools.islice(itertools.product(*choices), MAX_LEET_FORMS)]


def squeeze_forms(token: str) -> list[str]:
    """Runs of three or more equal letters squeezed to one and to two ("nuuuude" → "nude", "nuude")."""
    if not _TRIPLE_RE.search(token):
        return []
    return [_TRIPLE_RE.sub(r"\1", token), _TRIPLE_RE.sub(r"\1\1", token)]


@functools.lru_cache(maxsize=4096)
def token_forms(token: str) -> frozenset[str]:
    """Every reading of a token that the matcher compares with the list: itself, de-leeted and squeezed."""
    forms = {token}
    if is_mixed(token):
        forms.add(token.strip(LEET_SYMBOLS))
        forms.update(leet_forms(token))
    for form in list(forms):
        forms.update(squeeze_forms(form))
    return frozenset(f for f in forms if f)
