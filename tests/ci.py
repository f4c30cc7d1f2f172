"""Whether the tests run under CI, where a missing tool or service fails a test instead of skipping it."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    """CI is set to anything but empty, 0, false or no."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing(ci_must: str, here: str) -> NoReturn:
    """A tool or service a test needs is missing: under CI the test fails (`ci_must`: what CI must run, and how it
    gets the tool), elsewhere it is skipped (`here`: what is missing, and what still checks the rest)."""
    if in_ci():
        pytest.fail(ci_must)
    pytest.skip(here)
