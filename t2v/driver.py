"""The stages of a generation and the one driver that runs them, with CUDA-synchronised timings.

seeds → initial latents (noise, or a noised video) → encode prompts → denoise → decode → post-process.
`PipelineBase.run(plan, callbacks)` is that driver; each entry point only builds its `Plan` (t2v.pipeline's
generate and generate_batch, t2v.long_video, t2v.video2video) and never repeats the sequence. Latents or pixels
that are not finite end the run (NonFiniteOutput) rather than become a black video.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from einops import rearrange

from t2v.autoencoder import AutoencoderKL
from t2v.config import PICKED_SEEDS, ModelConfig
from t2v.errors import InvalidRequest, NonFiniteOutput
from t2v.progress import Callbacks
from t2v.request import GenerationRequest, GenerationResult
from t2v.sampling import SAMPLERS, EpsModel, GuidedDenoiser
from t2v.schedule import Schedule
from t2v.sizes import frame_text
from t2v.text_encoder import TextEncoder, Tokenizer

log = logging.getLogger(__name__)


def postprocess(video: torch.Tensor) -> np.ndarray:
    """[3, F, H, W] in about [-1, 1] → uint8 [F, H, W, 3]: ×0.5+0.5, clamp, ×255, truncate (as ModelScope)."""
    video = (video.float() * 0.5 + 0.5).clamp(0, 1)
    return (rearrange(video, "c f h w -> f h w c") * 255).to(torch.uint8).cpu().numpy()


def finite(values: torch.Tensor, stage: str) -> torch.Tensor:
    """`values`, unless they hold NaN or inf (NonFiniteOutput): one reduction, once per render, so that an overflow
    (a LoRA scale far too large, float16) is an error and not a black video."""
    if not torch.isfinite(values).all():
        raise NonFiniteOutput(stage)
    return values


def _guidance(requests: list[GenerationRequest], like: torch.Tensor) -> float | torch.Tensor:
    """One float when the batch shares its guidance scale, else a per-video [n, 1, 1, 1, 1] tensor."""
    scales = [r.guidance for r in requests]
    if len(set(scales)) == 1:
        return scales[0]
    return torch.tensor(scales, dtype=like.dtype, device=like.device).view(-1, 1, 1, 1, 1)


def _unwrapped(model: EpsModel) -> EpsModel:
    return model


@dataclass(frozen=True)
class Plan:
    """What one entry point asks of the driver; the sequence of stages is the driver's."""

    requests: list[GenerationRequest]  # one batch, sharing BATCH_KEYS (checked by the entry point)
    initial: Callable[[list[int]], torch.Tensor]  # seeds → initial latents [n, 4, F, h, w], float32 on the device
    timesteps: list[int]  # the sampler's time grid, or its tail (video-to-video)
    wrap: Callable[[EpsModel], EpsModel] = _unwrapped  # around the guided network, e.g. windows over time
    timings: Mapping[str, float] = field(default_factory=dict)  # extra entries for the results' timings
    what: str = "video"  # for the log line


class Stopwatch:
    """Seconds per stage, each read after `sync()`, so work queued on a GPU counts in the stage that queued it."""

    def __init__(self, sync: Callable[[], None], clock: Callable[[], float]):
        self.sync, self.clock = sync, clock
        self.sync()
        self.started = self.last = self.clock()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        """Wait for the device, then record the time since the previous lap as `name`."""
        self.sync()
        now = self.clock()
        self.laps[name], self.last = now - self.last, now

    def timings(self) -> dict[str, float]:
        """Every lap and `total_s`."""
        return {**self.laps, "total_s": self.last - self.started}


class Turns:
    """One call at a time on a pipeline, a render or a style change, and no lock (t2v starts and imports no threads:
    its caller owns them): a second call begun while the first runs, from another thread or from a callback of the
    render, is refused with `error` rather than mixed into it. A style changed between two steps made a video half
    in each; two renders at once would share the fast path's CUDA-graph buffers."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[str]] = {}

    @contextmanager
    def __call__(self, what: str, error: type[Exception] = InvalidRequest) -> Iterator[None]:
        """Hold the pipeline for `what` (a render, set_lora); `error` naming what holds it if another call does."""
        claim = (what,)
        held = self._held.setdefault("call", claim)  # one step under the GIL: of two claims, exactly one is kept
        if held is not claim:
            raise error(f"{what} was refused: this pipeline is busy with {held[0]} (called from another thread, or "
                        f"from a callback of it); call {what} once that has returned, or give each thread a "
                        "pipeline of its own (load_pipeline)")
        try:
            yield
        finally:
            del self._held["call"]


class PipelineBase:
    """A loaded model's three networks on one device, the stages that use them, and `run`, the one driver."""

    clock = staticmethod(time.perf_counter)  # the driver's clock (tests put their own on an instance)

    def __init__(self, config: ModelConfig, unet: torch.nn.Module, vae: AutoencoderKL, text_encoder: TextEncoder,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, vae_chunk: int = 8):
        self.config, self.device, self.dtype = config, torch.device(device), dtype
        self.unet, self.vae, self.text_encoder = unet.eval(), vae.eval(), text_encoder.eval()
        self.tokenizer = Tokenizer(config.text.context_length)
        self.schedule = Schedule(config.sampler.num_timesteps, config.sampler.beta_start, config.sampler.beta_end)
        self.vae_chunk = vae_chunk
        self.chunk_decoder: Callable[[torch.Tensor], torch.Tensor] | None = None  # the VAE's decode if None
        self.text_call: Callable[[torch.Tensor], torch.Tensor] | None = None  # the text encoder itself if None
        self.offloaded: list[torch.nn.Module] = []  # modules kept on the CPU between uses (see t2v.fast.offload)
        self.turns = Turns()  # a render or a style change at a time; another meanwhile is refused
        self.optimized = False  # whether t2v.fast.optimize switched it to the fast path

    def run(self, plan: Plan, callbacks: Callbacks | None = None) -> list[GenerationResult]:
        """The one driver: seeds → initial latents → encode prompts → denoise → decode → post-process. Another render
        or style change on this pipeline meanwhile (another thread's, a callback's) is refused (Turns)."""
        with self.turns("a render"):
            return self._run(plan, callbacks or Callbacks())

    def _run(self, plan: Plan, callbacks: Callbacks) -> list[GenerationResult]:
        self.check_placement()
        watch = Stopwatch(self.synchronize, self.clock)
        requests, first = plan.requests, plan.requests[0]
        seeds = [r.seed if r.seed is not None else secrets.randbelow(PICKED_SEEDS) for r in requests]
        x = plan.initial(seeds)
        cond, uncond, truncated = self.encode_prompts([r.prompt for r in requests],
                                                      [r.negative_prompt for r in requests])
        watch.lap("encode_s")
        callbacks.check_cancel(len(plan.timesteps))
        model = plan.wrap(GuidedDenoiser(self.unet, cond, uncond, _guidance(requests, x)))
        final = finite(self.denoise(x, model, first.sampler, plan.timesteps, callbacks), "latents")
        watch.lap("denoise_s")
        frames = [postprocess(video) for video in finite(self.decode(final), "frames")]
        watch.lap("decode_s")
        timings = {**watch.timings(), "batch": len(requests), **plan.timings}
        log.info("generated %s: %d × %d frames %s in %.2f s (seeds %s)", plan.what, len(requests),
                 len(frames[0]), frame_text(first.width, first.height), timings["total_s"], seeds)
        final = final.cpu()
        n = len(requests)
        return [GenerationResult(frames[i], seeds[i], dict(timings), truncated[i], self.config.is_random,
                                 final[i:i + 1], negative_truncated=truncated[n + i],
                                 negative_unused=bool(r.negative_prompt.strip()) and r.guidance == 1.0)
                for i, r in enumerate(requests)]

    def check_placement(self) -> None:
        """InvalidRequest if a network was moved off the device or precision the pipeline was loaded for
        (`pipe.unet.to("cuda")`, `pipe.vae.half()`): the render would fail after its prompt was encoded, in some
        matrix product, with a dtype or device mismatch. fp8 weights and offloaded networks' devices are as loaded."""
        for name in ("text_encoder", "unet", "vae"):
            module = getattr(self, name)
            param = next(module.parameters(), None)
            if param is None:
                continue
            device = self.device if module in self.offloaded else param.device
            other_index = None not in (self.device.index, device.index) and device.index != self.device.index
            other_dtype = param.dtype.itemsize > 1 and param.dtype != self.dtype
            if device.type != self.device.type or other_index or other_dtype:
                raise InvalidRequest(f"pipe.{name} is on {device} in {param.dtype}, but the pipeline was loaded for "
                                     f"{self.device} in {self.dtype} (pipe.device, pipe.dtype); a loaded pipeline "
                                     "is not moved network by network: move it whole with pipe.to(device, dtype), "
                                     "or load it with load_pipeline(source, device=..., dtype=...)")

    @torch.no_grad()
    def encode_prompts(self, prompts: list[str], negatives: list[str]) -> tuple[torch.Tensor, torch.Tensor, tuple]:
        """(cond [n, 77, d], uncond [n, 77, d], whether each was truncated: the n prompts', then the n negatives')
        from one text-encoder call."""
        tokens = self.tokenizer([*prompts, *negatives])
        with self._resident(self.text_encoder):
            emb = (self.text_call or self.text_encoder)(tokens.ids.to(self._device_of(self.text_encoder)))
        emb = emb.to(self.device, self.dtype)
        return emb[:len(prompts)], emb[len(prompts):], tokens.truncated

    def noise(self, seeds: list[int], frames: int, height: int, width: int, supplied: torch.Tensor | None = None,
              name: str = "latents") -> torch.Tensor:
        """Noise [n, 4, F, H/8, W/8], float32 on the device: one CPU randn per seed, so a seed gives the same noise
        on any device and in any batch; or `supplied`, checked against that shape (the error calls it `name`)."""
        one = (1, self.config.unet.in_dim, frames, height // 8, width // 8)
        if supplied is None:
            draws = [torch.randn(one, generator=torch.Generator("cpu").manual_seed(seed)) for seed in seeds]
            return torch.cat(draws).to(self.device)
        expected = (len(seeds), *one[1:])
        if not isinstance(supplied, torch.Tensor):  # a NumPy array was an AttributeError ('.to')
            raise InvalidRequest(f"{name} must be a torch.Tensor of shape {expected}, got {type(supplied).__name__}; "
                                 "convert an array with torch.from_numpy")
        if tuple(supplied.shape) != expected:
            raise InvalidRequest(f"{name} have shape {tuple(supplied.shape)}; this request needs {expected}")
        if not supplied.is_floating_point():  # integers were rounded noise; complex lost its imaginary part, silently
            raise InvalidRequest(f"{name} are of dtype {supplied.dtype}; pass floating-point noise (float32, float16 "
                                 "or bfloat16), such as torch.randn")
        if not torch.isfinite(supplied).all():  # else NonFiniteOutput after every step, blaming a LoRA or float16
            raise InvalidRequest(f"{name} hold NaN or inf values; pass finite ones, such as torch.randn")
        return supplied.to(self.device, torch.float32)

    def timesteps(self, request: GenerationRequest) -> list[int]:
        """The time grid of the request's sampler for its number of steps."""
        return SAMPLERS[request.sampler][1](self.schedule, request.steps)

    @torch.no_grad()
    def denoise(self, x: torch.Tensor, model: EpsModel, sampler: str, timesteps: list[int],
                callback: Callable[[int, int, torch.Tensor], None] | None = None) -> torch.Tensor:
        """Run the named sampler with the ε-model `model` over `timesteps`; latents stay float32 between steps."""
        return SAMPLERS[sampler][0](model, x.float(), self.schedule, timesteps, callback)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents [b, 4, F, h, w] → pixels [b, 3, F, H, W], decoded `vae_chunk` frames at a time."""
        with self._resident(self.vae):
            z = (latents / self.config.latent_scale).to(self._device_of(self.vae), self.dtype)
            return self.vae.decode_video(z, self.vae_chunk, self.chunk_decoder)

    def synchronize(self) -> None:
        """Wait for the work queued on the pipeline's GPU (nothing to wait for on the CPU)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

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
