"""Live previews' cadence: which steps of a sampler run become a GIF, and at most how often (STATUS_EDIT_INTERVAL_S,
whose throttled status edits are what shows them)."""

from __future__ import annotations

import numpy as np
import pytest

from bot.gpu.previews import Cadence, cadence
from t2v.preview import preview_due
from tests.clocks import Monotonic

FRAMES = np.zeros((2, 8, 64, 3), np.uint8)


def preview_times(interval_s: float, steps: int = 100, step_s: float = 0.5) -> list[float]:
    """When previews are made over a sampler run of `steps` steps of `step_s` seconds each (a hand-moved clock)."""
    clock, made = Monotonic(), []
    on_preview = cadence(lambda step, total, frames: made.append(clock.t), interval_s, clock)
    for step in range(1, steps + 1):
        clock.t = step * step_s
        if preview_due(on_preview, step, steps):
            on_preview(step, steps, FRAMES)
    return made


def test_with_a_10_s_status_edit_interval_previews_are_made_at_most_every_10_s():
    assert preview_times(2.0) == [6.0, 12.0, 18.0, 24.0, 30.0, 36.0, 42.0, 48.0]  # every 12th of 100 steps, 6 s apart
    made = preview_times(10.0)
    assert made == [12.0, 24.0, 36.0, 48.0]  # 10 s after the start, then 10 s after each: half of them
    assert all(later - earlier >= 10.0 for earlier, later in zip([0.0, *made], made, strict=False))


def test_a_cadence_follows_the_steps_the_sampler_reports_and_takes_no_fixed_every():
    with pytest.raises(TypeError, match="every"):
        Cadence(lambda step, total, frames: None, every=3)  # type: ignore[call-arg]
    upscale = cadence(lambda step, total, frames: None, 0.0)
    assert [step for step in range(1, 36) if upscale.due(step, 35)] == [4, 8, 12, 16, 20, 24, 28, 32]
