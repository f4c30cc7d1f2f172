"""Long clips by temporal co-denoising: window layout, continuous blending, the generate() contract."""

import dataclasses

import numpy as np
import pytest
import torch

from t2v import GenerationRequest, InvalidRequest
from t2v.long_video import WindowedDenoiser, generate_long, window_starts, window_weights
from t2v.sampling import sample_ddim
from t2v.schedule import Schedule

REQUEST = GenerationRequest("a cat walking on a beach", seed=3, steps=2, frames=4, width=64, height=64)


def test_windows_cover_every_frame_and_the_last_is_flush_with_the_end():
    assert window_starts(28, 16, 4) == [0, 12]
    assert window_starts(40, 16, 4) == [0, 12, 24]
    assert window_starts(30, 16, 4) == [0, 12, 14]
    assert window_starts(16, 16, 4) == [0] and window_starts(5, 16, 4) == [0]
    assert window_weights(6, 2, first=False, last=False).tolist() == pytest.approx([1 / 3, 2 / 3, 1, 1, 2 / 3, 1 / 3])


def window_mean_model(x: torch.Tensor, _t: int) -> torch.Tensor:
    """A stand-in network whose prediction is smooth inside a window but depends on which frames it sees."""
    return x.mean(dim=2, keepdim=True).expand_as(x) * 0.5 + 0.5 * x


def _largest_step(video: torch.Tensor) -> float:
    return float((video[:, :, 1:] - video[:, :, :-1]).abs().amax())


def test_blending_makes_the_seam_as_smooth_as_the_rest_where_concatenation_jumps():
    frames, window, overlap = 28, 16, 8
    x = torch.linspace(-1, 1, frames).view(1, 1, frames, 1, 1).repeat(1, 4, 1, 2, 2) * 3  # a smooth ramp
    schedule, grid = Schedule(), Schedule().ddim_timesteps(5)
    blended = sample_ddim(WindowedDenoiser(window_mean_model, frames, window, overlap), x, schedule, grid)
    a = sample_ddim(window_mean_model, x[:, :, :window], schedule, grid)
    b = sample_ddim(window_mean_model, x[:, :, frames - window:], schedule, grid)
    seam = window - overlap // 2  # naive: the first window's frames up to the middle of the overlap, then the second
    naive = torch.cat([a[:, :, :seam], b[:, :, seam - (frames - window):]], dim=2)
    inside = _largest_step(a)  # how much neighbouring frames differ within one window
    assert _largest_step(naive) > 2 * inside  # concatenation jumps at the seam
    assert _largest_step(blended) <= 1.05 * inside  # blending does not


def test_one_window_is_exactly_generate(tiny_pipe):
    long = generate_long(tiny_pipe, REQUEST, total_frames=3, window=4)
    plain = tiny_pipe.generate(dataclasses.replace(REQUEST, frames=3))
    assert np.array_equal(long.frames, plain.frames) and long.timings["windows"] == 1


def test_a_long_clip_has_every_frame_and_reports_every_step(tiny_pipe):
    steps, previews = [], []
    result = tiny_pipe.generate_long(REQUEST, total_frames=10, window=4, overlap=1,
                                     on_step=lambda s, t: steps.append((s, t)),
                                     on_preview=lambda s, t, f: previews.append(f.shape))
    assert result.frames.shape == (10, 64, 64, 3) and result.frames.dtype == np.uint8
    assert result.timings["windows"] == 3 and steps == [(1, 2), (2, 2)]
    assert previews == [(10, 64, 64, 3)] * 2


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"total_frames": 0}, r"total_frames=0 is outside the allowed range 1–256"),
    ({"total_frames": 20, "window": 1}, r"window=1 is outside the allowed range 2–64"),
    ({"total_frames": 20, "window": 8, "overlap": 8}, r"overlap=8 is outside the allowed range 0–7 \(window 8\)"),
    ({"total_frames": 20, "window": 3.5}, r"window=3.5 must be an integer, got float"),
    ({"total_frames": 20, "window": "4"}, r"window='4' must be an integer, got str"),
    ({"total_frames": 20, "window": 4, "overlap": 1.5}, r"overlap=1.5 must be an integer, got float"),
    ({"total_frames": 20.0}, r"total_frames=20.0 must be an integer, got float"),
    ({"total_frames": True}, r"total_frames=True must be an integer, got bool"),
])
def test_bad_lengths_are_named(tiny_pipe, kwargs, message):
    with pytest.raises(InvalidRequest, match=message):
        generate_long(tiny_pipe, REQUEST, **kwargs)


def test_numpy_integers_are_lengths_like_any_other(tiny_pipe):
    from t2v.long_video import _check

    checked = _check(tiny_pipe, np.int64(20), np.int32(8), np.uint8(2))
    assert checked == (20, 8, 2) and all(type(value) is int for value in checked)
