"""Live previews: the linear latent→RGB map, small frames, and GIF/WebP animations."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from t2v import GenerationRequest, InvalidRequest, Previews
from t2v.latent_preview import LATENT_RGB_FACTORS, latents_to_rgb, preview_frames
from t2v.preview import animation


def test_the_projection_maps_each_latent_channel_to_its_published_rgb_row():
    for channel, row in enumerate(LATENT_RGB_FACTORS):
        latent = torch.zeros(4, 2, 2)
        latent[channel] = 1.0
        rgb = latents_to_rgb(latent)
        assert torch.allclose(rgb, torch.tensor(row)[:, None, None].expand(3, 2, 2))
    assert torch.equal(latents_to_rgb(torch.zeros(4, 1, 1)), torch.zeros(3, 1, 1))


def test_preview_frames_are_small_uint8_rgb_with_the_video_aspect():
    x0 = torch.zeros(2, 4, 3, 40, 72)  # zeroscope's 576x320 latents
    x0[:, 3] = -1.0  # channel 4 lowers blue most: RGB (0.2120, 0.2616, 0.7177) on [-1, 1]
    frames = preview_frames(x0)
    assert frames.shape == (2, 3, 36, 64, 3) and frames.dtype == np.uint8
    expected = np.round((np.array([0.2120, 0.2616, 0.7177]) + 1) * 127.5)
    assert np.array_equal(frames[1, 2, 10, 20], expected.astype(np.uint8))
    assert preview_frames(torch.zeros(1, 4, 2, 8, 8), width=96).shape == (1, 2, 96, 96, 3)  # upsampled


@pytest.mark.parametrize("kind", ["gif", "webp"])
def test_animation_is_a_looping_image_with_every_frame(kind):
    frames = np.random.default_rng(0).integers(0, 256, (5, 18, 32, 3), dtype=np.uint8)
    data = animation(frames, fps=8, format=kind, scale=2)
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == kind.upper() and image.size == (64, 36)
        assert image.n_frames == 5 and image.info.get("loop") == 0


def test_animation_refuses_what_is_not_rgb_frames():
    with pytest.raises(ValueError, match=r"frames must be uint8 \[F, H, W, 3\]"):
        animation(np.zeros((2, 8, 8), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"format='mp4' is not one of gif, webp"):
        animation(np.zeros((2, 8, 8, 3), dtype=np.uint8), format="mp4")


@pytest.mark.parametrize(("options", "message"), [
    ({"fps": 0}, r"fps=0 is not a number of frames per second from 1 to 60"),  # was a ZeroDivisionError
    ({"fps": -1}, r"fps=-1 is not"),
    ({"fps": 1e-300}, r"fps=1e-300 is not"),  # was an OverflowError in Pillow
    ({"fps": "8"}, r"fps='8' is not"),
    ({"scale": 1.5}, r"scale=1.5 must be a whole number of 1 or more"),
])
def test_animation_refuses_a_frame_rate_or_scale_it_cannot_use(options, message):
    with pytest.raises(InvalidRequest, match=message):
        animation(np.zeros((2, 8, 8, 3), dtype=np.uint8), **options)
    with pytest.raises(InvalidRequest, match=r"frames must be uint8 \[F, H, W, 3\] with F ≥ 1, got list"):
        animation([[[[0, 0, 0]]]])


def test_generate_sends_a_preview_after_every_step(tiny_pipe):
    seen = []
    request = GenerationRequest("a cat", seed=1, steps=3, frames=2, width=128, height=64)
    result = tiny_pipe.generate(request, on_preview=lambda s, t, f: seen.append((s, t, f.shape, f.dtype)))
    assert seen == [(s, 3, (2, 32, 64, 3), np.uint8) for s in (1, 2, 3)]
    assert result.frames.shape == (2, 64, 128, 3)
    batch = []
    tiny_pipe.generate_batch([request, request], on_preview=lambda s, t, f: batch.append(f.shape))
    assert batch == [(2, 2, 32, 64, 3)] * 3


def test_previews_with_a_cadence_are_made_only_on_the_steps_asked_for(tiny_pipe, monkeypatch):
    import t2v.progress

    made = []
    real = t2v.progress.preview_frames
    monkeypatch.setattr(t2v.progress, "preview_frames", lambda x0: made.append(1) or real(x0))
    request = GenerationRequest("a cat", seed=1, steps=7, frames=2, width=64, height=64)
    seen = []
    tiny_pipe.generate(request, on_preview=Previews(lambda s, t, f: seen.append((s, f.shape)), every=3, last=False))
    assert seen == [(3, (2, 64, 64, 3)), (6, (2, 64, 64, 3))] and len(made) == 2  # no GPU→host copy on other steps
    batch = []
    tiny_pipe.generate_batch([request, request], on_preview=Previews(lambda s, t, f: batch.append(s), every=7))
    assert batch == [7]  # `last` (the default) includes the final step
    with pytest.raises(ValueError, match="every=0"):
        Previews(print, every=0)


def test_previews_wait_min_interval_s_after_the_previous_one():
    now = [0.0]
    shown = []
    previews = Previews(lambda s, t, f: shown.append(s), every=1, min_interval_s=2.0, clock=lambda: now[0])
    first = previews.narrowed(lambda s, t, f: shown.append(-s))  # generate's one-video view shares the clock
    due = []
    for step, t in enumerate([0.5, 1.9, 2.0, 3.0, 3.9], start=1):
        now[0] = t
        if first.due(step, 10):
            due.append(step)
            first(step, 10, np.zeros((1, 1, 1, 3), np.uint8))
    assert due == [3] and shown == [-3]  # 2 s after the start, then not before 4.0
    now[0] = 5.0
    assert previews.due(6, 10)
    with pytest.raises(ValueError, match="min_interval_s=-1"):
        Previews(print, min_interval_s=-1)
