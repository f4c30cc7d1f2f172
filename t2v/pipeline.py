"""Text-to-video pipeline: check inputs → encode prompt → prepare latents → denoise → decode → post-process."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from einops import rearrange

from t2v.autoencoder import AutoencoderKL
from t2v.config import ModelConfig
from t2v.sampling import SAMPLERS, GuidedDenoiser
from t2v.schedule import Schedule
from t2v.text_encoder import TextEncoder, Tokenizer

log = logging.getLogger(__name__)

MAX_SEED = 2**63 - 1
LIMITS = {"steps": (1, 150), "guidance": (1.0, 30.0), "frames": (1, 64), "size": (64, 1024), "fps": (1, 60)}


class InvalidRequest(ValueError):
    """A generation request with a value outside its allowed range."""


class GenerationCancelled(Exception):
    """Raised when `should_cancel()` returned True; `step` is the number of finished steps."""

    def __init__(self, step: int, total: int):
        super().__init__(f"generation cancelled after {step}/{total} steps")
        self.step, self.total = step, total


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

    @torch.no_grad()
    def encode_prompt(self, prompt: str, negative_prompt: str = "") -> tuple[torch.Tensor, torch.Tensor, bool]:
        """(cond, uncond, truncated): embeddings [1, 77, d]; uncond is the negative prompt, "" by default."""
        tokens = self.tokenizer([prompt, negative_prompt])
        emb = self.text_encoder(tokens.ids.to(self.device))
        return emb[:1], emb[1:], tokens.truncated[0]

    def prepare_latents(self, request: GenerationRequest, seed: int) -> torch.Tensor:
        """Initial noise [1, 4, F, H/8, W/8] in float32, drawn on the CPU so a seed gives the same noise anywhere."""
        shape = (1, self.config.unet.in_dim, request.frames, request.height // 8, request.width // 8)
        generator = torch.Generator("cpu").manual_seed(seed)
        return torch.randn(shape, generator=generator, dtype=torch.float32).to(self.device)

    @torch.no_grad()
    def denoise(self, latents: torch.Tensor, cond: torch.Tensor, uncond: torch.Tensor, request: GenerationRequest,
                callback: Callable[[int, int, torch.Tensor], None] | None = None) -> torch.Tensor:
        """Run the request's sampler with classifier-free guidance; latents stay float32 between steps."""
        sampler, grid = SAMPLERS[request.sampler]
        model = GuidedDenoiser(self.unet, cond, uncond, request.guidance)
        return sampler(model, latents.float(), self.schedule, grid(self.schedule, request.steps), callback)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents [b, 4, F, h, w] → pixels [b, 3, F, H, W], decoded `vae_chunk` frames at a time."""
        z = (latents / self.config.latent_scale).to(self.dtype)
        return self.vae.decode_video(z, self.vae_chunk)

    def generate(self, request: GenerationRequest, latents: torch.Tensor | None = None,
                 on_step: Callable[[int, int], None] | None = None,
                 should_cancel: Callable[[], bool] | None = None) -> GenerationResult:
        """Generate one video; `on_step(step, total)` after every step, `should_cancel()` checked before each."""
        started = time.perf_counter()
        seed = request.seed if request.seed is not None else secrets.randbelow(2**32)
        latents = self._initial_latents(request, seed, latents)
        cond, uncond, truncated = self.encode_prompt(request.prompt, request.negative_prompt)
        encoded = time.perf_counter()

        def callback(i: int, total: int, _x0: torch.Tensor) -> None:
            if on_step is not None:
                on_step(i + 1, total)
            if should_cancel is not None and i + 1 < total and should_cancel():
                raise GenerationCancelled(i + 1, total)

        if should_cancel is not None and should_cancel():
            raise GenerationCancelled(0, request.steps)
        final = self.denoise(latents, cond, uncond, request, callback)
        self._sync()
        denoised = time.perf_counter()
        frames = postprocess(self.decode(final)[0])
        done = time.perf_counter()
        timings = {"encode_s": encoded - started, "denoise_s": denoised - encoded, "decode_s": done - denoised,
                   "total_s": done - started}
        log.info("generated %d frames %dx%d in %.2f s (seed %d)", request.frames, request.width, request.height,
                 timings["total_s"], seed)
        return GenerationResult(frames, seed, timings, truncated, self.config.is_random, final.cpu())

    def _initial_latents(self, request: GenerationRequest, seed: int, latents: torch.Tensor | None) -> torch.Tensor:
        expected = (1, self.config.unet.in_dim, request.frames, request.height // 8, request.width // 8)
        if latents is None:
            return self.prepare_latents(request, seed)
        if tuple(latents.shape) != expected:
            raise InvalidRequest(f"latents have shape {tuple(latents.shape)}; this request needs {expected}")
        return latents.to(self.device, torch.float32)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
