"""Video-to-video (SDEdit, Meng et al. 2022), step for step as diffusers' VideoToVideoSDPipeline.

Stages: check inputs → fit the frames to the request size → encode (posterior mean × latent scale, as
sd-webui-text2video; diffusers samples the posterior, the only difference) → add noise at the first timestep
of the last int(steps × strength) steps of the sampler's grid → denoise those steps with the prompt →
decode → post-process. This is how zeroscope_v2_XL upscales zeroscope_v2_576w output (model-spec §6.5).

Fitting: the frames are centre-cropped to the request's aspect ratio, then resized with antialiased bicubic
interpolation (torch.nn.functional.interpolate; antialiasing widens the kernel when shrinking, as PIL's
BICUBIC does), so an upscale from 576×320 to 1024×576 is a pure resize. Frames already at the request size
are used as they are.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange

from t2v.config import ModelConfig
from t2v.driver import PipelineBase, Plan
from t2v.errors import InvalidRequest
from t2v.progress import Callbacks, OnPreview, OnStep, ShouldCancel, first_video
from t2v.request import LIMITS, GenerationRequest, GenerationResult, check_request, plain_number
from t2v.schedule import Schedule
from t2v.sizes import frame_text

log = logging.getLogger(__name__)


def fit_request(video: np.ndarray, request: GenerationRequest, config: ModelConfig) -> GenerationRequest:
    """The request with its defaults (frames: the video's; size: the model's), once the video is uint8
    [F, H, W, 3] with F equal to the request's frames; InvalidRequest naming what is wrong otherwise."""
    check_request(request, "generate_video2video")
    if not isinstance(video, np.ndarray) or video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3:
        kind = f"{video.dtype} {video.shape}" if isinstance(video, np.ndarray) else type(video).__name__
        raise InvalidRequest(f"video must be a uint8 array [frames, height, width, 3], got {kind}")
    if min(video.shape[1:3]) < 8:
        size = frame_text(video.shape[2], video.shape[1])
        raise InvalidRequest(f"video frames of {size} are too small (8 px at least)")
    low, high = LIMITS["frames"]
    if not low <= len(video) <= high:  # else "frames=70 is outside …", a field the caller never set
        raise InvalidRequest(f"the video has {len(video)} frames; video-to-video takes {low}–{high}")
    if request.frames is None:
        request = replace(request, frames=len(video))
    if video.shape[0] != request.frames:  # pipe.request(prompt) fills in the model's frames
        raise InvalidRequest(f"the video has {video.shape[0]} frames but request.frames is {request.frames}; pass "
                             f"frames={video.shape[0]} (a GenerationRequest without frames takes the video's)")
    return request.with_defaults(config)


def fit_frames(video: np.ndarray, width: int, height: int) -> torch.Tensor:
    """uint8 [F, H, W, 3] → float [F, 3, height, width] in [-1, 1]: centre crop to the aspect, bicubic resize."""
    # torch.from_numpy refuses negative strides (a reversed video[::-1]); a contiguous array is used as it is
    frames = rearrange(torch.from_numpy(np.ascontiguousarray(video)), "f h w c -> f c h w").float()
    h, w = frames.shape[-2:]
    if w * height != h * width:  # crop the longer side to the target aspect ratio
        crop_w, crop_h = min(w, round(h * width / height)), min(h, round(w * height / width))
        top, left = (h - crop_h) // 2, (w - crop_w) // 2
        frames = frames[..., top:top + crop_h, left:left + crop_w]
    if frames.shape[-2:] != (height, width):
        frames = F.interpolate(frames, size=(height, width), mode="bicubic", antialias=True, align_corners=False)
    return (frames / 127.5 - 1.0).clamp(-1.0, 1.0)


def strength_timesteps(grid: list[int], strength: float) -> list[int]:
    """The last int(len(grid) × strength) timesteps (diffusers `get_timesteps`); InvalidRequest if none remain."""
    strength = plain_number(strength, f"strength={strength!r}", real=True)
    if not 0.0 < strength <= 1.0:
        raise InvalidRequest(f"strength={strength!r} is outside the allowed range (0, 1]")
    count = min(int(len(grid) * strength), len(grid))
    if count < 1:
        raise InvalidRequest(f"strength={strength} of {len(grid)} steps leaves no step to run; raise either")
    return grid[len(grid) - count:]


def add_noise(schedule: Schedule, latents: torch.Tensor, noise: torch.Tensor, t: int) -> torch.Tensor:
    """x_t = sqrt(ᾱ_t)·x₀ + sqrt(1 − ᾱ_t)·ε (DDPM forward process; diffusers `DDIMScheduler.add_noise`)."""
    a = schedule.alpha_bar(t)
    return a**0.5 * latents + (1.0 - a) ** 0.5 * noise


@torch.no_grad()
def encode_video(pipe: PipelineBase, pixels: torch.Tensor) -> torch.Tensor:
    """[F, 3, H, W] in [-1, 1] → scaled posterior-mean latents [1, 4, F, H/8, W/8] (float32 on pipe.device)."""
    param = next(pipe.vae.parameters())
    means = [pipe.vae.encode(part.to(param.device, param.dtype))[0] for part in pixels.split(max(1, pipe.vae_chunk))]
    latents = torch.cat(means).float() * pipe.config.latent_scale
    return rearrange(latents, "f c h w -> 1 c f h w").to(pipe.device)


def generate_video2video(pipe: PipelineBase, request: GenerationRequest, video: np.ndarray, strength: float = 0.7,
                         noise: torch.Tensor | None = None, on_step: OnStep | None = None,
                         should_cancel: ShouldCancel | None = None,
                         on_preview: OnPreview | None = None) -> GenerationResult:
    """Re-generate `video` (uint8 [F, H, W, 3]) at the request's size (None: the model's) with its prompt, keeping
    1 − strength of it; request.frames, if given, must be the video's.

    `noise` [1, 4, F, H/8, W/8] replaces the seed's noise. `on_step(step, total)` counts the int(steps × strength)
    steps actually run; `should_cancel` and `on_preview(step, total, frames)` as VideoPipeline.generate.
    """
    request = fit_request(video, request, pipe.config)
    timesteps = strength_timesteps(pipe.timesteps(request), strength)

    def initial(seeds: list[int]) -> torch.Tensor:
        """The encoded video noised to timesteps[0] with the seed's noise (or `noise`)."""
        eps = pipe.noise(seeds, request.frames, request.height, request.width, noise, name="noise")
        latents = encode_video(pipe, fit_frames(video, request.width, request.height))
        return add_noise(pipe.schedule, latents, eps, timesteps[0])

    plan = Plan([request], initial, timesteps, what=f"video-to-video at strength {strength:.2f}")
    return pipe.run(plan, Callbacks(on_step, should_cancel, first_video(on_preview)))[0]
