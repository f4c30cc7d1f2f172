"""Live previews' cadence: which steps of a sampler run get one, and at most how often (STATUS_EDIT_INTERVAL_S, whose
throttled status edits are what shows them); and that the GPU thread hands on frames, not GIFs."""

from __future__ import annotations

import numpy as np
import pytest

from bot.gpu import previews as previews_module
from bot.gpu.previews import SCALE, Cadence, Preview, cadence, previews
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


def test_the_gpu_thread_hands_on_the_frames_and_the_gif_is_made_only_when_asked_for(monkeypatch):
    encoded = []
    real = previews_module.animation
    monkeypatch.setattr(previews_module, "animation", lambda *args, **kwargs: encoded.append(args) or real(*args,
                                                                                                            **kwargs))
    sent = []
    on_preview = previews(lambda *report: sent.append(report), fps=8, interval_s=0.0)["on_preview"]
    frames = np.full((3, 16, 64, 3), 200, np.uint8)
    on_preview(12, 50, frames)  # on the GPU thread: no GIF is made there (~0.1-0.2 s of CPU a preview)
    assert encoded == [] and [(step, total) for step, total, _ in sent] == [(12, 50)]
    preview = sent[0][2]
    assert isinstance(preview, Preview) and preview.step == 12 and preview.frames is frames and preview.fps == 8
    gif = preview.gif()  # where a status edit shows it (bot.ui.delivery, in a thread)
    assert gif.startswith(b"GIF89a") and len(encoded) == 1 and encoded[0][0] is frames
    width, height = int.from_bytes(gif[6:8], "little"), int.from_bytes(gif[8:10], "little")
    assert (width, height) == (64 * SCALE, 16 * SCALE)
