"""Build the policy eval sets from bases.py: `python tests/data/policy/generate.py` rewrites the four JSONL files.

Evasions: each base's target word or phrase is obfuscated by one family of tricks (and a few by two), with a fixed
seed per split. The transforms imitate what people type; they were written before the matcher was tuned and share
no code with it. Harmless prompts: the hand-written tricky ones (alternately dev and held-out) and captions from
templates. Held-out files are for measuring only: never tune the policy on them.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from bases import (
    DEV_BASES,
    DEV_FOREIGN,
    DEV_INFLECTIONS,
    HELDOUT_BASES,
    HELDOUT_FOREIGN,
    HELDOUT_INFLECTIONS,
    TRICKY_HARMLESS,
)

HERE = Path(__file__).parent
MASKS = "*#_.-?!%~'`^\"+"
SEPARATORS = [" ", ".", "-", "_", "*", "/", "|", "·", "\u200b", "  ", ". ", "~"]
LEET = {
    "a": ["4", "@", "/\\", "^", "∂"], "e": ["3", "€", "&", "£"], "i": ["1", "!", "|", "¡"],
    "o": ["0", "()", "°", "ø", "[]"], "s": ["5", "$", "§", "z"], "t": ["7", "+", "†"], "g": ["9", "6"],
    "b": ["8", "|3", "ß"], "l": ["1", "|", "£"], "z": ["2"], "c": ["(", "¢", "<"], "k": ["|<", "|{"],
    "h": ["#", "|-|"], "n": ["|\\|", "^/"], "m": ["|\\/|", "/\\/\\"], "u": ["|_|", "µ", "v"],
    "r": ["|2", "®"], "d": ["|)"], "p": ["|>", "|*"], "y": ["¥", "`/"], "x": ["><"], "w": ["vv", "\\/\\/"],
}
HOMOGLYPHS = {  # Cyrillic and Greek look-alikes, accented Latin, small capitals
    "a": ["а", "á", "à", "ä", "α"], "e": ["е", "é", "ë", "ε"], "o": ["о", "ó", "ö", "ο", "σ"],
    "i": ["і", "í", "ï", "ι"],
    "c": ["с", "ç"], "p": ["р", "ρ"], "x": ["х", "χ"], "y": ["у", "ý"], "k": ["к", "κ"], "n": ["ñ", "ո", "ɴ"],
    "u": ["υ", "ü", "ú"], "r": ["г", "ʀ"], "s": ["ѕ", "š"], "t": ["т", "τ"], "h": ["һ", "н"], "b": ["в", "ь"],
    "d": ["ԁ", "ď"], "g": ["ɡ", "ğ"], "l": ["ӏ", "ł"], "m": ["м", "ṃ"], "w": ["ω", "ŵ"], "z": ["ż", "ʐ"],
}
KEYBOARD = {"a": "s", "b": "v", "c": "x", "d": "f", "e": "r", "f": "g", "g": "h", "h": "j", "i": "o", "k": "l",
            "l": "k", "m": "n", "n": "m", "o": "p", "p": "o", "r": "t", "s": "d", "t": "y", "u": "i", "v": "b",
            "w": "e", "x": "z", "y": "u", "z": "x"}


def _pick_word(phrase: str, rng: random.Random) -> tuple[list[str], int]:
    words = phrase.split(" ")
    longest = [i for i, w in enumerate(words) if len(w) == max(len(w) for w in words)]
    return words, rng.choice(longest)


def _on_word(phrase: str, rng: random.Random, change) -> str:
    words, i = _pick_word(phrase, rng)
    words[i] = change(words[i], rng)
    return " ".join(words)


def mask(word: str, rng: random.Random) -> str:
    chars = list(word)
    for _ in range(1 if len(word) < 6 else rng.choice((1, 2))):
        i = rng.randrange(1, len(chars) - 1) if len(chars) > 2 else 1
        if rng.random() < 0.5:
            chars[i] = rng.choice(MASKS)
        else:
            chars.insert(i, rng.choice(MASKS))
    return "".join(chars)


def repeat(word: str, rng: random.Random) -> str:
    chars = list(word)
    if rng.random() < 0.5:
        i = rng.randrange(len(chars))
        chars[i] *= rng.randint(3, 6)
    else:
        for i in sorted(rng.sample(range(len(chars)), min(2, len(chars))), reverse=True):
            chars[i] *= 2
    return "".join(chars)


def split(word: str, rng: random.Random) -> str:
    if len(word) < 4:
        return word[0] + " " + word[1:]
    i = rng.randrange(1, len(word) - 1)
    return word[:i] + " " * rng.choice((1, 1, 2)) + word[i:]


def leet(word: str, rng: random.Random) -> str:
    chars = list(word)
    letters = [i for i, c in enumerate(chars) if c in LEET]
    for i in rng.sample(letters, min(len(letters), rng.choice((1, 2, 3)))):
        chars[i] = rng.choice(LEET[chars[i]])
    return "".join(chars)


def homoglyph(word: str, rng: random.Random) -> str:
    style = rng.random()
    if style < 0.2:  # fullwidth
        return "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalpha() else c for c in word)
    if style < 0.35:  # mathematical bold
        return "".join(chr(0x1D41A + ord(c) - 97) if "a" <= c <= "z" else c for c in word)
    chars = list(word)
    letters = [i for i, c in enumerate(chars) if c in HOMOGLYPHS]
    for i in rng.sample(letters, min(len(letters), rng.choice((1, 2, 3)))):
        chars[i] = rng.choice(HOMOGLYPHS[chars[i]])
    return "".join(chars)


def separated(word: str, rng: random.Random) -> str:
    return rng.choice(SEPARATORS).join(word)


def typo(word: str, rng: random.Random) -> str:
    if len(word) < 5:
        return word + word[-1]
    i = rng.randrange(1, len(word) - 2)
    kind = rng.choice(("delete", "swap", "substitute"))
    if kind == "delete":
        return word[:i] + word[i + 1:]
    if kind == "swap":
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    return word[:i] + KEYBOARD.get(word[i], word[i]) + word[i + 1:]


WORD_FAMILIES = {"mask": mask, "repeat": repeat, "split": split, "leet": leet, "homoglyph": homoglyph,
                 "separated": separated, "typo": typo}


def spaced_prompt(text: str, rng: random.Random) -> str:
    """The whole prompt with its letters spaced, dotted or hyphenated."""
    sep, gap = rng.choice(((" ", "   "), (".", " "), ("-", " "), (" ", " / ")))
    return gap.join(sep.join(word) for word in text.split(" "))


def evasions(bases, inflections, foreign, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for template, target, category in bases:
        families = rng.sample(sorted(WORD_FAMILIES), 6)
        for family in families:
            changed = _on_word(target, rng, WORD_FAMILIES[family])
            rows.append(_row(template.format(w=changed), category, family, "denylist"))
        a, b = rng.sample(["mask", "repeat", "leet", "homoglyph", "split"], 2)
        changed = _on_word(_on_word(target, rng, WORD_FAMILIES[a]), rng, WORD_FAMILIES[b])
        rows.append(_row(template.format(w=changed), category, "combined", "denylist", f"{a}+{b}"))
        if rng.random() < 0.3:
            rows.append(_row(spaced_prompt(template.format(w=target), rng), category, "spaced_prompt", "denylist"))
    rows += [_row(text, category, "inflection", "denylist") for text, category in inflections]
    rows += [_row(text, category, "foreign_word", "not_english") for text, category in foreign]
    return rows


def _row(text: str, category: str, family: str, reason: str, note: str = "") -> dict:
    return {"text": text, "expect": "block", "category": category, "family": family, "reason": reason,
            "note": note}


SUBJECTS = ["a golden retriever", "an old fisherman", "a red fox", "two children", "a robot", "a jellyfish",
            "a chef", "a ballerina", "a hot air balloon", "a steam train", "a koala", "a skateboarder",
            "a lighthouse keeper", "a flock of geese", "a vintage car", "a panda", "an astronaut", "a violinist",
            "a snow leopard", "a paper boat", "a grandmother", "a hummingbird", "a firefighter", "a sailboat",
            "a knight in armour", "a tiny dragon", "a barista", "a beekeeper", "a surfer", "a lion cub",
            "a street musician", "a sea turtle", "a pilot", "a farmer", "a mermaid", "a wizard", "a snail",
            "a cyclist", "an octopus", "a toddler"]
ACTIONS = ["walking slowly", "dancing", "sleeping", "running", "reading a book", "looking at the sky",
           "eating breakfast", "playing in the snow", "floating", "spinning around", "waving", "painting",
           "jumping over a puddle", "climbing", "fishing", "laughing", "drinking tea", "gliding", "swimming",
           "building a sandcastle"]
PLACES = ["in a sunflower field", "on a foggy pier", "in Times Square", "on the moon", "in a cozy kitchen",
          "under the northern lights", "in a bamboo forest", "on a rooftop in Tokyo", "in a desert at dusk",
          "beside a waterfall", "in a snowy village", "inside a glass greenhouse", "on a busy market street",
          "in a library", "at the bottom of the ocean", "on a mountain ridge", "in a rainy alley",
          "at a lakeside cabin", "in a medieval castle", "on a train platform"]
STYLES = ["", "", "", ", cinematic", ", 4k", ", watercolor", ", pixel art", ", slow motion", ", golden hour",
          ", studio ghibli style", ", claymation", ", drone shot", ", 35mm film", ", highly detailed", ", anime",
          ", timelapse", ", hyperrealistic", ", oil painting", ", black and white", ", macro shot"]


def captions(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    seen: set[str] = set()
    while len(seen) < count:
        seen.add(f"{rng.choice(SUBJECTS)} {rng.choice(ACTIONS)} {rng.choice(PLACES)}{rng.choice(STYLES)}")
    return sorted(seen)


def harmless(tricky: list[str], count: int, seed: int) -> list[dict]:
    rows = [{"text": t, "expect": "allow", "kind": "tricky"} for t in tricky]
    rows += [{"text": t, "expect": "allow", "kind": "caption"} for t in captions(count - len(tricky), seed)]
    return rows


def main() -> None:
    sets = {
        "evasions.dev.jsonl": evasions(DEV_BASES, DEV_INFLECTIONS, DEV_FOREIGN, seed=15),
        "evasions.heldout.jsonl": evasions(HELDOUT_BASES, HELDOUT_INFLECTIONS, HELDOUT_FOREIGN, seed=1515),
        "harmless.dev.jsonl": harmless(TRICKY_HARMLESS[0::2], 520, seed=15),
        "harmless.heldout.jsonl": harmless(TRICKY_HARMLESS[1::2], 520, seed=1515),
    }
    dev_captions = {r["text"] for r in sets["harmless.dev.jsonl"]}
    sets["harmless.heldout.jsonl"] = [r for r in sets["harmless.heldout.jsonl"] if r["text"] not in dev_captions]
    for name, rows in sets.items():
        with (HERE / name).open("w", encoding="utf-8") as out:
            out.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


if __name__ == "__main__":
    main()
