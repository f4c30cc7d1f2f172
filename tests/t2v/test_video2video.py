"""Video-to-video: equal to diffusers' VideoToVideoSDPipeline, the strength contract, fitting the frames."""

import numpy as np
import pytest
import torch
from einops import rearrange

from t2v import GenerationCancelled, GenerationRequest, InvalidRequest, load_pipeline
from t2v.video2video import fit_frames, generate_video2video, strength_timesteps
from tests.t2v.helpers import relative_error

PROMPT = "a panda eating bamboo on a rock"


def _video(frames: int = 2, height: int = 64, width: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (frames, height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize(("which", "width", "height"), [("256", 256, 256), ("576", 576, 320)])
def test_video2video_equals_diffusers_video_to_video(request, which, width, height, monkeypatch):
    from diffusers import VideoToVideoSDPipeline
    from diffusers.pipelines.deprecated.text_to_video_synthesis import pipeline_text_to_video_synth_img2img as v2v

    # diffusers samples the VAE posterior; we take its mean (sd-webui-text2video): pin diffusers to the mean too
    monkeypatch.setattr(v2v, "retrieve_latents", lambda output, generator=None: output.latent_dist.mode())
    theirs_dir = request.getfixturevalue(f"diffusers_{which}")
    theirs_pipe = VideoToVideoSDPipeline(**theirs_dir[0].components)
    theirs_pipe.set_progress_bar_config(disable=True)
    video = _video(height=height, width=width)
    pixels = rearrange(torch.from_numpy(video).float() / 255, "f h w c -> f c h w")
    theirs = theirs_pipe(PROMPT, video=pixels, strength=0.6, num_inference_steps=5, guidance_scale=9.0,
                         generator=torch.Generator().manual_seed(5), output_type="latent").frames
    # the same draw diffusers makes: one randn of the (b f) c h w latents from the seeded generator
    noise = torch.randn(2, 4, height // 8, width // 8, generator=torch.Generator().manual_seed(5))
    req = GenerationRequest(PROMPT, seed=1, steps=5, frames=2, width=width, height=height)
    steps = []
    ours = generate_video2video(load_pipeline(theirs_dir[1]), req, video, strength=0.6,
                                noise=rearrange(noise, "(b f) c h w -> b c f h w", b=1),
                                on_step=lambda s, t: steps.append((s, t)))
    assert relative_error(ours.latents, theirs) <= 1e-4
    assert steps == [(1, 3), (2, 3), (3, 3)]  # int(5 × 0.6) steps run


def test_strength_picks_the_last_steps_of_the_grid():
    grid = [801, 601, 401, 201, 1]
    assert strength_timesteps(grid, 1.0) == grid
    assert strength_timesteps(grid, 0.6) == [401, 201, 1]
    with pytest.raises(InvalidRequest, match=r"strength=0.1 of 5 steps leaves no step to run"):
        strength_timesteps(grid, 0.1)
    with pytest.raises(InvalidRequest, match=r"strength=1.5 is outside the allowed range \(0, 1\]"):
        strength_timesteps(grid, 1.5)
    with pytest.raises(InvalidRequest, match=r"strength='0.5' must be a number, got str"):
        strength_timesteps(grid, "0.5")
    assert strength_timesteps(grid, np.float32(0.6)) == [401, 201, 1]


def test_frames_in_any_memory_order_are_the_frames_they_show():
    """A flipped or reversed view (negative strides, which torch.from_numpy refuses) is fitted as its copy would be."""
    video = _video(3)
    for view in (video[:, ::-1], video[::-1], video[..., ::-1], video[:, :, ::2].repeat(2, axis=2)[:, :, ::-1]):
        assert torch.equal(fit_frames(view, 64, 64), fit_frames(view.copy(), 64, 64))


def test_frames_are_centre_cropped_to_the_aspect_then_resized():
    video = np.zeros((1, 48, 96, 3), dtype=np.uint8)
    video[..., :24, 0] = 255  # a red quarter on the left, cropped away by a square target
    video[..., 24:72, 2] = 255
    frames = fit_frames(video, 64, 64)
    assert frames.shape == (1, 3, 64, 64)
    assert float(frames[:, 0].max()) == -1.0 and float(frames[:, 2].min()) > 0.99
    assert torch.equal(fit_frames(_video(), 64, 64), torch.from_numpy(_video()).permute(0, 3, 1, 2) / 127.5 - 1)


def test_an_upscale_gives_frames_of_the_requested_size_with_previews(tiny_pipe):
    request = GenerationRequest(PROMPT, seed=2, steps=4, frames=2, width=128, height=64)
    previews = []
    result = tiny_pipe.generate_video2video(request, _video(2, 32, 64), strength=0.5,
                                                      on_preview=lambda s, t, f: previews.append((s, t, f.shape)))
    assert result.frames.shape == (2, 64, 128, 3) and result.seed == 2
    assert previews == [(1, 2, (2, 32, 64, 3)), (2, 2, (2, 32, 64, 3))]


def test_bad_videos_and_cancellation(tiny_pipe):
    request = GenerationRequest(PROMPT, seed=2, steps=4, frames=2, width=64, height=64)
    with pytest.raises(InvalidRequest, match=r"the video has 3 frames but request.frames is 2"):
        generate_video2video(tiny_pipe, request, _video(3))
    with pytest.raises(InvalidRequest, match=r"video must be a uint8 array \[frames, height, width, 3\], got float"):
        generate_video2video(tiny_pipe, request, _video().astype(np.float32))
    seen = []
    with pytest.raises(GenerationCancelled) as err:
        generate_video2video(tiny_pipe, request, _video(), strength=1.0, on_step=lambda s, t: seen.append(s),
                             should_cancel=lambda: len(seen) >= 1)
    assert seen == [1] and (err.value.step, err.value.total) == (1, 4)
