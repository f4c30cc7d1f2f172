"""Whether the tests run under CI, where a missing tool or service fails a test instead of skipping it."""

from __future__ import annotations

import os


def in_ci() -> bool:
    """CI is set to anything but empty, 0, false or no."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
