"""The policy's reading of user text: what is refused outright, then folding to plain a-z, clauses and chunks.

Each step answers a family of evasions (docs/policy.md measures them):

- bidi and control characters (`unsafe_characters`, the set bot.characters defines): refused by the gate before
  anything else sees the text, so what the denylist reads is what Discord shows, and nothing is stored that the
  database cannot hold; stacks of combining marks (`stacked_marks`, "zalgo" text) are refused after the denylist,
  which reads the letters under them;
- NFKC: fullwidth, circled and mathematical letters ("ｎｕｄｅ", "𝐧𝐮𝐝𝐞"); the enclosed letters it leaves, negative
  circled and squared ones and regional indicators ("🅽🆄🅳🅴", "🇳 🇺 🇩 🇪"), by a table; but a pair of regional
  indicators that is a flag is a flag, no letters ("🇳🇺🇩🇪" is Niue and Germany);
- format characters (Cf) dropped: zero-width joiners and soft hyphens inside a word ("nu\u200bde");
- accents stripped (NFKD, drop Mn): "nüdé";
- casefold, then look-alike letters folded to Latin with confusable-homoglyphs (Cyrillic "р", Greek "υ"), and
  Latin letters with no decomposition by their Unicode name ("ɴ" LATIN LETTER SMALL CAPITAL N, "ǝ" LATIN SMALL
  LETTER TURNED E, "ø");
- clauses: phrases match within a clause, never across ", ; : . ! ?" followed by a space;
- chunks: the whitespace-separated pieces of a clause, each read as its alphanumeric parts ("gore-tex" → gore, tex)
  and, when it mixes letters with other marks, as leet and masked readings (`chunk_readings`) and as a pattern in
  which a mask stands for one hidden letter or none (`chunk_pattern`); marks alone are separators.
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from collections.abc import Callable
from typing import NamedTuple

from bot.characters import UNSAFE_RE  # refused in any user text: the characters the bot never shows

# A clause ends at punctuation before a space, or a dash or slash between spaces, after a word of two letters or
# more (not in "n. u. d. e", "J. R. R.", "n a z i / s a l u t e").
_CLAUSE_RE = re.compile(r"(?<=[^\W_]{2})(?:[,;:!?.…]+(?=\s|$)|\s[-–—|/]+\s)")
_PART_RE = re.compile(r"[a-z0-9]+")
# A Latin letter named for the ASCII one it is drawn from: "ɴ" SMALL CAPITAL N, and the upside-down and mirrored ones
# of upside-down text ("ǝ" TURNED E, "ɘ" REVERSED E, "ʇ" TURNED T, "ɐ" TURNED A, "ↄ" REVERSED C).
_NAME_LETTER_RE = re.compile(r"^LATIN (?:SMALL |CAPITAL )?LETTER (?:SMALL CAPITAL )?(?:TURNED |REVERSED |INVERTED )?"
                             r"([A-Z])\b")
_EDGE_MARKS = "\"'`()[]{}«»“”‘’,;:?.…"  # wrapping punctuation, not part of a word

# Leetspeak, read only inside chunks that mix letters with other marks. Multi-character spellings first.
LEET_SEQUENCES = {
    "|\\/|": "m", "/\\/\\": "m", "|\\|": "n", "|_|": "u", "\\/\\/": "w", "|-|": "h", "|<": "k", "|{": "k",
    "|2": "r", "|)": "d", "|>": "p", "|*": "p", "|3": "b", "/\\": "a", "()": "o", "[]": "o", "><": "x",
    "`/": "y", "^/": "n", "vv": "w",
}
LEET = {
    "0": "o", "1": "il", "2": "z", "3": "e", "4": "a", "5": "s", "6": "g", "7": "t", "8": "b", "9": "g",
    "@": "a", "$": "s", "!": "i", "|": "il", "+": "t", "€": "e", "£": "le", "§": "s", "¥": "y", "®": "r",
    "†": "t", "°": "o", "¡": "i", "¢": "c", "(": "c", "<": "c", "∂": "a", "^": "a", "&": "e", "μ": "u",
}
_SEQUENCES = tuple(LEET_SEQUENCES)
_SEQUENCE_RE = re.compile("|".join(map(re.escape, LEET_SEQUENCES)))
_CONTRACTION_RE = re.compile(r"['`’](s|t|d|ll|re|ve|m)$")  # an apostrophe before an English ending hides nothing
# A word with a possessive or a contraction ("china's", "don't", "he'll"): it reads as the word alone, undisguised.
# Not "'d", which also writes "-ed" ("nak'd").
_PLAIN_CONTRACTION_RE = re.compile(r"([a-z]{2,})['`’](?:s|t|ll|re|ve|m)")
# Marks that may also stand in for a letter or sit inside a word as a mask ("n*de", "nu_de", "p%rn").
MASKS = frozenset("*#_.-?!%~'`^\"+/|·:=")
# Look-alikes that confusable-homoglyphs does not map, or maps to another letter than the one they imitate in a
# Latin word: Latin letters without a decomposition, and the Greek and Cyrillic lower-case letters shaped like a
# Latin one (these win over confusable-homoglyphs, which reads "β" as "ß" and "ӏ" as "i").
_FOLDS = {"ø": "o", "æ": "ae", "œ": "oe", "þ": "th", "ð": "d", "ı": "i", "ł": "l", "đ": "d", "ո": "n", "ʐ": "z",
          "ɡ": "g", "ə": "e", "ɔ": "c", "ɛ": "e", "ɜ": "e",  # schwa and open o: confusables' look-alikes of
          # "ǝ" (turned e) and "ↄ" (reversed c), read by name; open e and its mirror: Greek "ε"
          "β": "b", "ε": "e", "η": "n", "κ": "k", "μ": "u", "π": "n", "τ": "t", "χ": "x", "ω": "w",
          "б": "b", "в": "b", "г": "r", "и": "u", "к": "k", "м": "m", "н": "h", "п": "n", "т": "t", "ц": "u",
          "ш": "w", "ь": "b", "э": "e", "ӏ": "l"}
MAX_READINGS = 16  # leet/mask readings tried per chunk; real chunks need far fewer
# Combining marks one character may carry: a Latin letter takes two at most ("ệ"), a keycap emoji two ("#️⃣"); a
# stack of dozens ("zalgo" text) is refused. The denylist reads the text first, its marks stripped.
MAX_STACKED_MARKS = 4
# Enclosed letters that NFKC leaves alone (they have no compatibility decomposition) but Discord shows as the letter
# they enclose: negative circled and negative squared capitals ("🅝", "🅽"), and regional indicators ("🇳") that
# are no part of a flag (`_hide_flags`).
_ENCLOSED_LETTERS = {start + i: chr(ord("a") + i) for start in (0x1F150, 0x1F170) for i in range(26)}
_REGIONAL_INDICATOR_A = 0x1F1E6
_REGIONAL_LETTERS = {_REGIONAL_INDICATOR_A + i: chr(ord("a") + i) for i in range(26)}
_REGIONAL_RUN_RE = re.compile("[\U0001F1E6-\U0001F1FF]+")
# The regions a pair of regional indicators shows as a flag (Unicode's RGI flags: ISO 3166-1 and nine more, EU, UN);
# any other pair shows as its two letters.
_FLAG_REGION_CODES = (
    "AC AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV "
    "BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CP CR CU CV CW CX CY CZ DE DG DJ DK DM DO DZ EA EC EE EG EH "
    "ER ES ET EU FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU "
    "IC ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU "
    "LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR "
    "NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM "
    "SN SO SR SS ST SV SX SY SZ TA TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM UN US UY UZ VA VC "
    "VE VG VI VN VU WF WS XK YE YT ZA ZM ZW"
)
FLAG_REGIONS = frozenset(_FLAG_REGION_CODES.split())


def unsafe_characters(text: str) -> list[str]:
    """The bidi controls and control characters in text, as U+XXXX codes (empty when the text is fine)."""
    return [f"U+{ord(c):04X}" for c in sorted(set(UNSAFE_RE.findall(text)))]


def stacked_marks(text: str) -> tuple[str, int] | None:
    """The character of text with the most combining marks on it and their number, when that is more than
    MAX_STACKED_MARKS ("zalgo" text); None when every character is written as some language writes it."""
    if text.isascii():
        return None
    base, count, tallest = "", 0, ("", 0)
    for char in text:
        if unicodedata.category(char).startswith("M"):
            count += 1
            if count > tallest[1]:
                tallest = (base, count)
        else:
            base, count = char, 0
    return tallest if tallest[1] > MAX_STACKED_MARKS else None


@functools.cache
def fold_letter(char: str) -> str:
    """Map a non-ASCII letter to the ASCII letter(s) it imitates, or return it unchanged."""
    from confusable_homoglyphs import confusables  # its tables load in 0.2 s: only once a prompt needs them

    if char in _FOLDS:
        return _FOLDS[char]
    match = _NAME_LETTER_RE.match(unicodedata.name(char, ""))
    found = confusables.is_confusable(char, greedy=True, preferred_aliases=["latin"]) or []
    for hit in found:
        for glyph in hit["homoglyphs"]:
            latin = glyph["c"].casefold()
            if latin.isascii() and latin.isalpha():
                return latin
    if match:
        return match.group(1).lower()
    return _FOLDS.get(char, char)


def strip_accents(text: str) -> str:
    """Decompose (NFKD) and drop the combining marks: "crème brûlée" → "creme brulee"."""
    if text.isascii():
        return text
    return "".join(c for c in unicodedata.normalize("NFKD", text) if unicodedata.category(c) != "Mn")


def normalise(text: str) -> str:
    """Fold text so that look-alike, accented, fullwidth and zero-width-split letters read as plain a-z."""
    if text.isascii():
        return text.lower()  # what every step below does to ASCII
    text = _REGIONAL_RUN_RE.sub(_hide_flags, unicodedata.normalize("NFKC", text)).translate(_ENCLOSED_LETTERS)
    text = strip_accents("".join(c for c in text if unicodedata.category(c) != "Cf")).casefold()
    return "".join(fold_letter(c) if not c.isascii() and c.isalpha() else c for c in text)


def _hide_flags(run: re.Match[str]) -> str:
    """A run of regional indicators with its flags left as emoji, so that only the indicators shown as letters read
    as letters: "🇳🇺🇩🇪" (Niue, Germany) is two flags, not "nude". Indicators pair from the start of the run, as
    text is segmented; from the first pair that is no flag on, the rest reads as letters, since a renderer that
    looks for flags anywhere ("🇹[🇮🇹]🇸") would show those letters around a flag the pairing does not see."""
    indicators = run.group()
    kept = 0
    while kept + 1 < len(indicators) and _region(indicators[kept:kept + 2]) in FLAG_REGIONS:
        kept += 2
    return indicators[:kept] + indicators[kept:].translate(_REGIONAL_LETTERS)


def _region(pair: str) -> str:
    """The region code two regional indicators spell: "🇩🇪" → "DE"."""
    return "".join(chr(ord("A") + ord(c) - _REGIONAL_INDICATOR_A) for c in pair)


def clauses(normalised: str) -> list[str]:
    """Split normalised text where punctuation ends a clause; a phrase never matches across these cuts."""
    return [clause for clause in _CLAUSE_RE.split(normalised) if clause.strip()]


class Chunk(NamedTuple):  # a tuple: a prompt makes dozens, and a frozen dataclass is slower to build
    """A whitespace-separated piece of a clause: its alphanumeric parts and, if it is marked, its readings."""

    parts: tuple[str, ...]  # "gore-tex" → ("gore", "tex"); a chunk of marks only has one empty part
    readings: frozenset[str]  # leet and mask readings of the whole chunk ("p%rn" → "prn"); empty for plain words
    pattern: tuple[str, ...]  # its letters as regex units, marks as what they may hide (`chunk_pattern`)
    marked: bool = False  # mixes letters with other marks, or spells letters with marks alone ("|{")
    innocent: bool = False  # ... but only joins common words ("blood-red", "rock'n'roll"): read as written only


def chunks(clause: str, is_common_word: Callable[[str], bool]) -> list[Chunk]:
    """The chunks of a clause, wrapping punctuation trimmed; marks alone ("/", "-") are separators, not chunks."""
    found = []
    for raw in clause.split():
        if raw.isascii() and raw.isalpha() and raw.islower():  # a plain word: what the general case finds, sooner
            found.append(Chunk((raw,), frozenset(), chunk_pattern(raw)))
            continue
        text = _trim(raw)
        contraction = _PLAIN_CONTRACTION_RE.fullmatch(text)
        if contraction is not None:  # no disguise, so no edit: "china's" is no "chinks", "tim's" no "tits"
            word = contraction.group(1)
            found.append(Chunk((word,), frozenset(), chunk_pattern(word)))
            continue
        pattern = chunk_pattern(text)
        if not any(unit != WILDCARD for unit in pattern):
            continue  # a separator: it hides nothing and takes no position
        parts = tuple(_PART_RE.findall(text)) or ("",)
        marked = not text.isalpha() and (any(c.isalpha() for c in text) or _spells_letters(text))
        innocent = marked and all(is_common_word(part) for part in parts)
        found.append(Chunk(parts, chunk_readings(text) if marked else frozenset(), pattern, marked, innocent))
    return found


def _spells_letters(text: str) -> bool:
    """Whether a chunk without letters spells some with leet ("|{", "5&><"); digits and marks alone ("1984",
    "24/7") stay numbers."""
    return bool(_SEQUENCE_RE.search(text)) or any(c in LEET and not c.isdigit() for c in text)


def _trim(raw: str) -> str:
    """Wrapping punctuation off a chunk, unless it spells a letter ("()rgy", "n()")."""
    start, end = 0, len(raw)
    while start < end and raw[start] in _EDGE_MARKS and not raw.startswith(_SEQUENCES, start):
        start += 1
    while end > start and raw[end - 1] in _EDGE_MARKS and not raw[:end].endswith(_SEQUENCES):
        end -= 1
    return raw[start:end] or raw


WILDCARD = "[a-z]?"  # what a masking character stands for: one hidden letter, or none


@functools.lru_cache(maxsize=4096)
def chunk_pattern(text: str) -> tuple[str, ...]:
    """A chunk as regex units, one per letter it shows or hides: a letter (a run of it as `x+`; "v" also as "u"),
    a leet spelling as the letters it may be ("$" → [s], "|\\|" → [n]), and a masking character as WILDCARD:
    "n*de" → n, [a-z]?, d, e, which matches "nude"."""
    units: list[str] = []
    text = _CONTRACTION_RE.sub(r"\1", text)  # "pen's" is a possessive, not "pen?s"
    i = 0
    while i < len(text):
        sequence = _SEQUENCE_RE.match(text, i)
        if sequence is not None:
            units.append(f"[{LEET_SEQUENCES[sequence.group()]}]")
            i = sequence.end()
            continue
        char = text[i]
        if char.isascii() and char.isalpha():
            unit = "[uv]" if char == "v" else char
            if units and units[-1] in (unit, unit + "+"):
                units[-1] = unit + "+"
            else:
                units.append(unit)
        elif char in MASKS or char not in LEET:
            units.append(WILDCARD)
        else:
            units.append(f"[{LEET[char]}]")
        i += 1
    return tuple(units)


@functools.lru_cache(maxsize=4096)
def chunk_readings(text: str) -> frozenset[str]:
    """Leet and mask readings of a disguised chunk: "|\\|ud3" → "nude", "n*de" → "nde" (the mask may hide a
    letter: the matcher allows one edit on these), "$3x" → "sex"; at most MAX_READINGS."""
    units: list[tuple[str, ...]] = []
    i = 0
    while i < len(text):
        sequence = _SEQUENCE_RE.match(text, i)  # the first listed sequence that starts here
        if sequence is not None:
            units.append((LEET_SEQUENCES[sequence.group()],))
            i = sequence.end()
            continue
        char = text[i]
        options: tuple[str, ...] = (char,) if char.isalpha() and char.isascii() else ()
        options += tuple(LEET.get(char, ""))
        if char in MASKS or not options:
            options += ("",)
        units.append(options)
        i += 1
    readings = {"".join(p) for p in itertools.islice(itertools.product(*units), MAX_READINGS)}
    masked = "".join(c for c in text if c.isalpha() and c.isascii())  # every mark a mask
    readings.add(masked)
    return frozenset(r for r in readings if len(r) >= 2 and r.isalpha())
