"""Text-to-video pipeline: check inputs → encode prompt → prepare latents → denoise → decode → post-process."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from einops import rearrange

from t2v.autoencoder import AutoencoderKL
from t2v.config import ModelConfig
from t2v.preview import Previews, preview_due, preview_frames
from t2v.sampling import SAMPLERS, GuidedDenoiser
from t2v.schedule import Schedule
from t2v.text_encoder import TextEncoder, Tokenizer

log = logging.getLogger(__name__)

MAX_SEED = 2**63 - 1
LIMITS = {"steps": (1, 150), "guidance": (1.0, 30.0), "frames": (1, 64), "size": (64, 1024), "fps": (1, 60)}
BATCH_KEYS = ("frames", "width", "height", "steps", "sampler")  # what the requests of one batch must share


class InvalidRequest(ValueError):
    """A generation request with a value outside its allowed range."""


class GenerationCancelled(Exception):
    """Raised when `should_cancel()` returned True; `step` is the number of finished steps."""

    def __init__(self, step: int, total: int):
        super().__init__(f"generation cancelled after {step}/{total} steps")
        self.step, self.total = step, total

    def __reduce__(self) -> tuple:
        """Pickle by (step, total): a Ray worker raises it in another process."""
        return type(self), (self.step, self.total)


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise InvalidRequest(f"{name}={value!r} is outside the allowed range {low}–{high}")


@dataclass(frozen=True)
class GenerationRequest:
    """What to generate; validated on construction (each error names the value and the allowed range)."""

    prompt: str
    negative_prompt: str = ""
    seed: int | None = None
    steps: int = 50
    guidance: float = 9.0
    frames: int = 16
    width: int = 256
    height: int = 256
    fps: int = 8
    sampler: str = "ddim"

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise InvalidRequest("prompt is empty: describe the video to generate")
        for name in ("steps", "frames", "fps", "width", "height"):
            if isinstance(getattr(self, name), bool) or not isinstance(getattr(self, name), int):
                raise InvalidRequest(f"{name}={getattr(self, name)!r} must be an integer")
        _check_range("steps", self.steps, *LIMITS["steps"])
        _check_range("guidance", self.guidance, *LIMITS["guidance"])
        _check_range("frames", self.frames, *LIMITS["frames"])
        _check_range("fps", self.fps, *LIMITS["fps"])
        for name in ("width", "height"):
            value = getattr(self, name)
            _check_range(name, value, *LIMITS["size"])
            if value % 64:
                raise InvalidRequest(f"{name}={value} must be a multiple of 64 (64, 128, …, 1024)")
        if self.seed is not None and not 0 <= self.seed <= MAX_SEED:
            raise InvalidRequest(f"seed={self.seed} is outside the allowed range 0–{MAX_SEED}")
        if self.sampler not in SAMPLERS:
            raise InvalidRequest(f"sampler={self.sampler!r} is not one of {', '.join(sorted(SAMPLERS))}")


@dataclass
class GenerationResult:
    """uint8 frames [F, H, W, 3], the seed used, timings in seconds, and notes for the user."""

    frames: np.ndarray
    seed: int
    timings: dict[str, float]
    prompt_truncated: bool = False
    is_noise: bool = False
    latents: torch.Tensor | None = field(default=None, repr=False)

    @property
    def notes(self) -> list[str]:
        """Human-readable caveats about this result."""
        notes = []
        if self.prompt_truncated:
            notes.append("the prompt was longer than 77 CLIP tokens and was truncated")
        if self.is_noise:
            notes.append("this model has random weights (tiny-random preset): the video is noise")
        return notes


def _check_batch(requests: list[GenerationRequest]) -> GenerationRequest:
    """The batch's shared shape; raise InvalidRequest naming the first request that differs."""
    if not requests:
        raise InvalidRequest("a batch needs at least one request")
    first = requests[0]
    for i, request in enumerate(requests[1:], start=1):
        differs = [k for k in BATCH_KEYS if getattr(request, k) != getattr(first, k)]
        if differs:
            raise InvalidRequest(f"request {i} differs from request 0 in {', '.join(differs)}; a batch must share "
                                 f"{', '.join(BATCH_KEYS)}")
    return first


def _guidance(requests: list[GenerationRequest], like: torch.Tensor) -> float | torch.Tensor:
    """One float when the batch shares its guidance scale, else a per-video [n, 1, 1, 1, 1] tensor."""
    scales = [r.guidance for r in requests]
    if len(set(scales)) == 1:
        return scales[0]
    return torch.tensor(scales, dtype=like.dtype, device=like.device).view(-1, 1, 1, 1, 1)


def postprocess(video: torch.Tensor) -> np.ndarray:
    """[3, F, H, W] in about [-1, 1] → uint8 [F, H, W, 3]: ×0.5+0.5, clamp, ×255, truncate (as ModelScope)."""
    video = (video.float() * 0.5 + 0.5).clamp(0, 1)
    return (rearrange(video, "c f h w -> f h w c") * 255).to(torch.uint8).cpu().numpy()


class VideoPipeline:
    """The ModelScope text-to-video model: OpenCLIP text encoder → UNet3D (DDIM / DPM++) → KL decoder."""

    def __init__(self, config: ModelConfig, unet: torch.nn.Module, vae: AutoencoderKL, text_encoder: TextEncoder,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, vae_chunk: int = 8):
        self.config, self.device, self.dtype = config, torch.device(device), dtype
        self.unet, self.vae, self.text_encoder = unet.eval(), vae.eval(), text_encoder.eval()
        self.tokenizer = Tokenizer(config.text.context_length)
        self.schedule = Schedule(config.sampler.num_timesteps, config.sampler.beta_start, config.sampler.beta_end)
        self.vae_chunk = vae_chunk
        self.offloaded: list[torch.nn.Module] = []  # modules kept on the CPU between uses (see t2v.fast.offload)

    @torch.no_grad()
    def encode_prompt(self, prompt: str, negative_prompt: str = "") -> tuple[torch.Tensor, torch.Tensor, bool]:
        """(cond, uncond, truncated): embeddings [1, 77, d]; uncond is the negative prompt, "" by default."""
        cond, uncond, truncated = self.encode_prompts([prompt], [negative_prompt])
        return cond, uncond, truncated[0]

    @torch.no_grad()
    def encode_prompts(self, prompts: list[str], negatives: list[str]) -> tuple[torch.Tensor, torch.Tensor, tuple]:
        """(cond [n, 77, d], uncond [n, 77, d], truncated per prompt) from one text-encoder call."""
        tokens = self.tokenizer([*prompts, *negatives])
        with self._resident(self.text_encoder):
            emb = self.text_encoder(tokens.ids.to(self._device_of(self.text_encoder)))
        emb = emb.to(self.device, self.dtype)
        return emb[:len(prompts)], emb[len(prompts):], tokens.truncated[:len(prompts)]

    def prepare_latents(self, request: GenerationRequest, seed: int) -> torch.Tensor:
        """Initial noise [1, 4, F, H/8, W/8] in float32, drawn on the CPU so a seed gives the same noise anywhere."""
        shape = (1, self.config.unet.in_dim, request.frames, request.height // 8, request.width // 8)
        generator = torch.Generator("cpu").manual_seed(seed)
        return torch.randn(shape, generator=generator, dtype=torch.float32).to(self.device)

    @torch.no_grad()
    def denoise(self, latents: torch.Tensor, cond: torch.Tensor, uncond: torch.Tensor, request: GenerationRequest,
                callback: Callable[[int, int, torch.Tensor], None] | None = None,
                guidance: float | torch.Tensor | None = None) -> torch.Tensor:
        """Run the request's sampler with classifier-free guidance; latents stay float32 between steps."""
        sampler, grid = SAMPLERS[request.sampler]
        scale = request.guidance if guidance is None else guidance
        model = GuidedDenoiser(self.unet, cond, uncond, scale)
        return sampler(model, latents.float(), self.schedule, grid(self.schedule, request.steps), callback)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents [b, 4, F, h, w] → pixels [b, 3, F, H, W], decoded `vae_chunk` frames at a time."""
        with self._resident(self.vae):
            z = (latents / self.config.latent_scale).to(self._device_of(self.vae), self.dtype)
            return self.vae.decode_video(z, self.vae_chunk)

    def optimize(self, **options) -> VideoPipeline:
        """Switch on the fast inference path (t2v.fast.optimize: fused projections, compile, CUDA graphs)."""
        from t2v.fast import optimize

        optimize(self, **options)
        return self

    def generate(self, request: GenerationRequest, latents: torch.Tensor | None = None,
                 on_step: Callable[[int, int], None] | None = None,
                 should_cancel: Callable[[], bool] | None = None,
                 on_preview: Callable[[int, int, np.ndarray], None] | None = None) -> GenerationResult:
        """Generate one video; `on_step(step, total)` after every step, `should_cancel()` checked before each.

        `on_preview(step, total, frames)`, if given, gets a VAE-free preview of the current x̂₀ after every step
        (a `t2v.Previews` chooses which steps): uint8 [F, h, 64, 3] (t2v.preview; animate it with
        t2v.preview.animation).
        """
        first = None
        if on_preview is not None:
            def first_video(step: int, total: int, frames: np.ndarray) -> None:
                on_preview(step, total, frames[0])

            first = on_preview.narrowed(first_video) if isinstance(on_preview, Previews) else first_video
        return self.generate_batch([request], latents, on_step, should_cancel, first)[0]

    def generate_batch(self, requests: list[GenerationRequest], latents: torch.Tensor | None = None,
                       on_step: Callable[[int, int], None] | None = None,
                       should_cancel: Callable[[], bool] | None = None,
                       on_preview: Callable[[int, int, np.ndarray], None] | None = None) -> list[GenerationResult]:
        """Generate several same-shape videos in one batch (own prompt, negative, seed and guidance each).

        One progress report, preview ([n, F, h, 64, 3]) and cancellation check per step for the whole batch;
        results in request order.
        """
        started = time.perf_counter()
        first = _check_batch(requests)
        seeds = [r.seed if r.seed is not None else secrets.randbelow(2**32) for r in requests]
        x = self._initial_latents(requests, seeds, latents)
        cond, uncond, truncated = self.encode_prompts([r.prompt for r in requests],
                                                      [r.negative_prompt for r in requests])
        encoded = time.perf_counter()

        def callback(i: int, total: int, _x0: torch.Tensor) -> None:
            if on_step is not None:
                on_step(i + 1, total)
            if on_preview is not None and preview_due(on_preview, i + 1, total):
                on_preview(i + 1, total, preview_frames(_x0))
            if should_cancel is not None and i + 1 < total and should_cancel():
                raise GenerationCancelled(i + 1, total)

        if should_cancel is not None and should_cancel():
            raise GenerationCancelled(0, first.steps)
        final = self.denoise(x, cond, uncond, first, callback, _guidance(requests, x))
        self._sync()
        denoised = time.perf_counter()
        videos = self.decode(final)
        frames = [postprocess(video) for video in videos]
        done = time.perf_counter()
        timings = {"encode_s": encoded - started, "denoise_s": denoised - encoded, "decode_s": done - denoised,
                   "total_s": done - started, "batch": len(requests)}
        log.info("generated %d × %d frames %dx%d in %.2f s (seeds %s)", len(requests), first.frames, first.width,
                 first.height, timings["total_s"], seeds)
        final = final.cpu()
        return [GenerationResult(frames[i], seeds[i], dict(timings), truncated[i], self.config.is_random,
                                 final[i:i + 1]) for i in range(len(requests))]

    def generate_video2video(self, request: GenerationRequest, video: np.ndarray, strength: float = 0.7,
                             **kwargs) -> GenerationResult:
        """Re-generate uint8 frames [F, H, W, 3] at the request's size and prompt (SDEdit; t2v.video2video)."""
        from t2v.video2video import generate_video2video

        return generate_video2video(self, request, video, strength, **kwargs)

    def generate_long(self, request: GenerationRequest, total_frames: int, window: int | None = None,
                      overlap: int | None = None, **kwargs) -> GenerationResult:
        """`total_frames` frames from overlapping windows blended every step (t2v.long_video)."""
        from t2v.long_video import generate_long

        return generate_long(self, request, total_frames, window, overlap, **kwargs)

    def _initial_latents(self, requests: list[GenerationRequest], seeds: list[int],
                         latents: torch.Tensor | None) -> torch.Tensor:
        r = requests[0]
        expected = (len(requests), self.config.unet.in_dim, r.frames, r.height // 8, r.width // 8)
        if latents is None:
            return torch.cat([self.prepare_latents(req, seed) for req, seed in zip(requests, seeds, strict=True)])
        if tuple(latents.shape) != expected:
            raise InvalidRequest(f"latents have shape {tuple(latents.shape)}; this request needs {expected}")
        return latents.to(self.device, torch.float32)

    @contextmanager
    def _resident(self, module: torch.nn.Module) -> Iterator[None]:
        """Bring an offloaded module onto the GPU for one stage, then back to the CPU (`offload` set)."""
        if module not in self.offloaded:
            yield
            return
        module.to(self.device)
        try:
            yield
        finally:
            module.to("cpu")

    def _device_of(self, module: torch.nn.Module) -> torch.device:
        return self.device if module in self.offloaded else next(module.parameters()).device

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
