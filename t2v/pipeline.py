"""The text-to-video pipeline: one video, a batch, a long clip or video-to-video, all through t2v.driver's driver.

`VideoPipeline` is what `t2v.load_pipeline` returns. Long clips and video-to-video build their plans in
t2v.long_video and t2v.video2video, which import the driver only; this module sits above all three.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from functools import cached_property, partial
from pathlib import Path

import numpy as np
import torch

from t2v import long_video, video2video
from t2v.driver import PipelineBase, Plan
from t2v.errors import InvalidRequest, UnsupportedDevice
from t2v.lora import Styles
from t2v.precision import is_fp8, missing_device, parse_dtype
from t2v.progress import Callbacks, OnPreview, OnStep, ShouldCancel, first_video
from t2v.request import GenerationRequest, GenerationResult, check_batch, check_request

log = logging.getLogger(__name__)

__all__ = ["VideoPipeline"]


class VideoPipeline(PipelineBase):
    """The ModelScope text-to-video model: OpenCLIP text encoder → UNet3D (DDIM / DPM++) → KL decoder."""

    def request(self, prompt: str, **fields) -> GenerationRequest:
        """A GenerationRequest for this model: its default frames, width and height unless `fields` give them."""
        return GenerationRequest(prompt, **fields).with_defaults(self.config)

    def generate(self, request: GenerationRequest, latents: torch.Tensor | None = None,
                 on_step: OnStep | None = None, should_cancel: ShouldCancel | None = None,
                 on_preview: OnPreview | None = None) -> GenerationResult:
        """Generate one video; `on_step(step, total)` after every step, `should_cancel()` checked before each.

        `on_preview(step, total, frames)`, if given, gets a VAE-free preview of the current x̂₀ after every step
        (a `t2v.Previews` chooses which steps): uint8 [F, h, 64, 3] (t2v.latent_preview; animate it with
        t2v.preview.animation).
        """
        check_request(request, "generate")
        return self.generate_batch([request], latents, on_step, should_cancel, first_video(on_preview))[0]

    def generate_batch(self, requests: list[GenerationRequest], latents: torch.Tensor | None = None,
                       on_step: OnStep | None = None, should_cancel: ShouldCancel | None = None,
                       on_preview: OnPreview | None = None) -> list[GenerationResult]:
        """Generate several same-shape videos in one batch (own prompt, negative, seed and guidance each).

        One progress report, preview ([n, F, h, 64, 3]) and cancellation check per step for the whole batch;
        results in request order. Frames, width and height left at None are the model's.
        """
        if isinstance(requests, GenerationRequest | str):
            raise InvalidRequest(f"generate_batch takes a list of GenerationRequest, got one {type(requests).__name__}"
                                 "; pass [request], or call generate(request)")
        if isinstance(requests, Mapping) or not isinstance(requests, Iterable):  # None: a TypeError; a dict: "str"
            raise InvalidRequest(f"generate_batch takes a list of GenerationRequest, got {type(requests).__name__} "
                                 f"{requests!r:.60}; pass [request, ...]")
        requests = [check_request(request, "generate_batch").with_defaults(self.config) for request in requests]
        first = check_batch(requests)
        initial = partial(self.noise, frames=first.frames, height=first.height, width=first.width, supplied=latents)
        plan = Plan(requests, initial, self.timesteps(first))
        return self.run(plan, Callbacks(on_step, should_cancel, on_preview))

    def generate_long(self, request: GenerationRequest, total_frames: int, window: int | None = None,
                      overlap: int | None = None, **kwargs) -> GenerationResult:
        """`total_frames` frames from overlapping windows blended every step (t2v.long_video.generate_long)."""
        return long_video.generate_long(self, request, total_frames, window, overlap, **kwargs)

    def generate_video2video(self, request: GenerationRequest, video: np.ndarray, strength: float = 0.7,
                             **kwargs) -> GenerationResult:
        """Re-generate uint8 frames [F, H, W, 3] at the request's size and prompt (SDEdit; t2v.video2video)."""
        return video2video.generate_video2video(self, request, video, strength, **kwargs)

    @cached_property
    def styles(self) -> Styles:
        """The LoRAs loaded into this pipeline and the one applied (t2v.lora)."""
        return Styles(self)

    def load_lora(self, source: str | Path | Mapping[str, torch.Tensor], name: str | None = None) -> str:
        """Read a LoRA — a `.safetensors` file, a directory with diffusers' `pytorch_lora_weights.safetensors`, or a
        state dict — and check that it fits this model (LoraError naming the keys that do not); nothing is applied
        yet. Kept under `name` (default: the file's stem, or the directory's name), which is returned."""
        return self.styles.load(source, name)

    def set_lora(self, name: str | None, scale: float = 1.0, fused: bool = True) -> None:
        """Apply the loaded LoRA `name` at `scale` (as diffusers' `fuse_lora(lora_scale=scale)`) in place of the
        style applied before; None: no style. Fused (the default, the fast path's way) writes W + scale·B@A into
        the weights and restores them bit for bit later; `fused=False` computes it at every use (plain path)."""
        self.styles.apply(name, scale, fused)

    def to(self, device: str | torch.device | torch.dtype | None = None,
           dtype: torch.dtype | str | None = None) -> VideoPipeline:
        """Move the networks to `device` and/or `dtype` (as load_pipeline takes them; a torch.dtype alone as the
        first argument is the dtype, as in diffusers' `pipe.to(torch.float16)`); returns the pipeline. A style
        applied comes off the old weights and goes onto the moved ones; offloaded networks stay on the CPU. A move
        that fails halfway (out of GPU memory) moves every network back, applies the style again, and raises (a
        network it had moved to a narrower dtype comes back rounded: the log says so).

        Refused before anything moves (InvalidRequest, UnsupportedDevice): a device this machine lacks; fp8, and a
        pipeline already in fp8 (its e4m3 weights are quantised and their scales calibrated at load); a pipeline on
        the fast path (its fused modules, compiled code and CUDA graphs were made for its device and dtype): load it
        again with load_pipeline(source, device=..., dtype=...) for those."""
        if isinstance(device, torch.dtype) and dtype is None:
            device, dtype = None, device
        target = self.device if device is None else device
        problem = missing_device(target)
        if problem is not None:
            raise UnsupportedDevice(f"pipe.to(device={str(target)!r}): {problem}")
        target = torch.device(target)
        again = "load it again with load_pipeline(source, device=..., dtype=...)"
        if is_fp8(dtype) or any(p.dtype.itemsize == 1 for p in self.unet.parameters()):
            raise InvalidRequest(f"pipe.to({target}, dtype={dtype}): fp8 is chosen at load, where the e4m3 weights are "
                                 f"quantised and their scales calibrated; {again}")
        precision = self.dtype if dtype is None else parse_dtype(dtype, target)
        if self.optimized:
            raise InvalidRequest(f"pipe.to({target}, dtype={precision}): this pipeline is on the fast path "
                                 f"(optimize), whose fused modules and compiled code were made for {self.device} in "
                                 f"{self.dtype}; {again}, then optimize()")
        style = self.styles.active
        if style is not None:
            self.set_lora(None)
        try:
            with self.turns("pipe.to"):
                self._move(target, precision)
        except BaseException:  # out of GPU memory halfway, say: each network goes back, then the style
            rounded = "" if precision == self.dtype or precision.itemsize > self.dtype.itemsize else (
                f"; the networks it had moved were rounded to {precision} (load the pipeline again for its exact "
                "weights)")
            log.error("moving the pipeline to %s in %s failed; moved it back to %s in %s%s", target, precision,
                      self.device, self.dtype, rounded)
            self._move(self.device, self.dtype)
            raise
        finally:
            if style is not None:
                self.set_lora(style.name, style.scale, style.fused)
        log.info("moved the pipeline to %s in %s", target, precision)
        return self

    def _move(self, device: torch.device, dtype: torch.dtype) -> None:
        """Each network to `device` and `dtype` (an offloaded one to the CPU), then the pipeline's own record."""
        for module in (self.text_encoder, self.unet, self.vae):
            module.to(device="cpu" if module in self.offloaded else device, dtype=dtype)
        self.device, self.dtype = device, dtype

    def optimize(self, **options) -> VideoPipeline:
        """Switch on the fast inference path (t2v.fast.optimize: fused projections, compile, CUDA graphs)."""
        from t2v.fast import optimize

        self.styles.check_optimisable()
        optimize(self, **options)
        return self
