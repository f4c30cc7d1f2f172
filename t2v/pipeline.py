"""Text-to-video pipeline: check inputs → encode prompt → prepare latents → denoise → decode → post-process."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch
from einops import rearrange

from t2v.autoencoder import AutoencoderKL
from t2v.config import ModelConfig
from t2v.errors import GenerationCancelled, InvalidRequest
from t2v.latent_preview import preview_frames
from t2v.preview import Previews, preview_due
from t2v.request import BATCH_KEYS, LIMITS, MAX_SEED, GenerationRequest, GenerationResult, check_batch
from t2v.sampling import SAMPLERS, GuidedDenoiser
from t2v.schedule import Schedule
from t2v.text_encoder import TextEncoder, Tokenizer

log = logging.getLogger(__name__)

__all__ = ["BATCH_KEYS", "LIMITS", "MAX_SEED", "VideoPipeline", "postprocess"]  # the constants' home: t2v.request

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
        first = check_batch(requests)
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
