"""The README's list of `generate` options says what the CLI does when an option is left out, and names every
precision `--dtype` takes."""

import argparse
import re
from pathlib import Path

import pytest

from t2v.cli_parser import DEFAULTS, build_parser
from t2v.precision import DTYPES, FP8

README = Path(__file__).resolve().parents[2] / "README.md"


def _generate_options() -> str:
    """The README's paragraph that lists `generate`'s options, on one line."""
    text = README.read_text()
    start = text.index("`generate` options:")
    return " ".join(text[start:text.index("\n\n", start)].split())


def _said_of(option: str) -> str:
    """What that paragraph says of `option`: from its name to the next option's entry (one after a comma)."""
    paragraph = _generate_options()
    start = paragraph.index(f"`{option}`")
    following = re.search(r"(?<=, )`--[a-z]", paragraph[start + 1:])
    return paragraph[start:start + 1 + following.start()] if following else paragraph[start:]


def _generate_parser() -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["generate"]


@pytest.mark.parametrize("option", ["--model", "--device"])
def test_the_readme_names_the_default_of_each_option_the_parser_fills_in(option):
    default = next(a.default for a in _generate_parser()._actions if option in a.option_strings)
    said = _said_of(option)
    assert f"`{default}`" in said and "default" in said, (option, default, said)


@pytest.mark.parametrize(("option", "default"), [("--steps", DEFAULTS.steps), ("--guidance", f"{DEFAULTS.guidance:g}"),
                                                 ("--fps", DEFAULTS.fps)])
def test_the_readme_gives_each_sampling_default_in_brackets(option, default):
    assert f"({default})" in _said_of(option)


def test_the_readme_names_the_default_sampler():
    said = _said_of("--sampler")
    assert re.search(rf"`{DEFAULTS.sampler}` \([^)]*default\)", said), said


def test_the_readme_names_every_precision_dtype_takes_and_that_fp8_takes_no_lora():
    said = _said_of("--dtype")
    missing = [name for name in (*DTYPES, *FP8) if f"`{name}`" not in said]
    assert not missing, f"--dtype: the README does not name {missing}"
    assert "no `--lora`" in said
