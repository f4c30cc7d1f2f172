"""The models each GPU worker loads, and what the event loop learns about them once they are loaded.

A worker loads T2V_MODEL and, when UPSCALE_MODEL is set, the upscaler as the pipeline's `upscaler` attribute (the
work functions read it there; without UPSCALE_MODEL the worker holds the plain pipeline, as before). The loop
never holds a pipeline: `learn` asks a worker for a `ModelInfo` — frame sizes per aspect for the loaded model and
for the upscaler, and the model's default clip length — plain values read from the configs.

On GPUs (T2V_OPTIMIZE) the worker switches T2V_MODEL to t2v's fast path and takes jobs at once: a shape with nothing
compiled renders on the eager path (CUDA-graphed) while `bot.gpu.compiles` compiles it in the background, and the shapes
expected first (the default /video shape, at batch 1 then BATCH_MAX, then the other aspects) are queued there at load.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from bot.gpu.compiles import COMPILES, label
from bot.gpu.executor import CancelFn, Executor, ProgressFn
from bot.jobs.spec import ASPECTS, VideoOptions
from bot.settings import BATCH_MAX, MAX_FRAMES, Settings
from t2v import aspect_sizes, load_pipeline

log = logging.getLogger(__name__)

FALLBACK_FRAMES = 16  # ModelScope's clip length, for pipelines that do not say theirs
WARM_ORDER = ("1:1", "16:9", "9:16", "4:3", "3:4")  # /video's default aspect first, then by expected use
Size = tuple[int, int]


@dataclass(frozen=True)
class ModelSource:
    """What every worker loads, as plain values: a Ray worker is sent this, never the settings (they hold the token).

    Calling it with a device loads T2V_MODEL there, with UPSCALE_MODEL (when set) as its `upscaler`, and switches
    T2V_MODEL to the fast path when `optimize` says so for that device; it runs on the worker (thread or Ray actor).
    """

    model: str
    dtype: str | None = None  # None: float16 on GPUs, float32 on the CPU
    upscale_model: str | None = None
    optimize: str = "auto"  # T2V_OPTIMIZE: auto (on for cuda devices), on, off
    compile_cache: str | None = None  # T2V_COMPILE_CACHE (default beside the database); None: inductor's default
    batch_max: int = BATCH_MAX  # BATCH_MAX: the default shape warms at batch 1, then at this
    default_frames: int | None = None  # DEFAULT_FRAMES; None: the model's clip length, at most max_frames
    max_frames: int = MAX_FRAMES  # MAX_FRAMES
    backend: str = "inductor"  # torch.compile's backend (CPU tests: "eager")

    @classmethod
    def of(cls, settings: Settings) -> ModelSource:
        """The models the settings name, and how the workers prepare them."""
        dtype = None if settings.t2v_dtype == "auto" else settings.t2v_dtype
        return cls(settings.t2v_model, dtype, settings.upscale_model, settings.t2v_optimize,
                   str(settings.compile_cache.absolute()), settings.batch_max, settings.default_frames,
                   settings.max_frames)

    def __call__(self, device: str) -> Any:
        return self.prepare(load_pipeline(self.model, device=device, dtype=self.dtype), device)

    def prepare(self, pipeline: Any, device: str) -> Any:
        """What a worker does with its loaded T2V_MODEL: the upscaler beside it, the fast path when it applies."""
        if self.upscale_model is not None:
            pipeline.upscaler = load_pipeline(self.upscale_model, device=device, dtype=self.dtype)
        if self.fast_on(device):
            try:
                self._make_fast(pipeline, device)
            except Exception as error:
                raise RuntimeError(f"the fast path (T2V_OPTIMIZE={self.optimize}) failed on {device}: {error}; "
                                   "T2V_OPTIMIZE=off serves without it") from error
        return pipeline

    def fast_on(self, device: str) -> bool:
        """Whether workers on `device` use t2v's fast path: `on`, or `auto` on a CUDA device."""
        return self.optimize == "on" or (self.optimize == "auto" and device.startswith("cuda"))

    def _make_fast(self, pipeline: Any, device: str) -> None:
        """t2v.fast.optimize with compiles in the background thread, and the expected shapes queued there."""
        from t2v import fast  # lazily, and looked up at call time: tests stand in for it

        fast.optimize(pipeline, cache_dir=self.compile_cache, backend=self.backend)
        pipeline.unet.request_compile = COMPILES.requester(pipeline.unet, device)
        shapes = self.warm_shapes(pipeline)
        COMPILES.warm(pipeline.unet, device, shapes)
        log.info("fast path on %s: serving at once; compiling in the background (cache %s): %s", device,
                 self.compile_cache, ", ".join(label(shape) for shape in shapes))

    def warm_shapes(self, pipeline: Any) -> list[Any]:
        """The UNet shapes expected first: the default /video shape at batch 1 and BATCH_MAX, then the other
        aspects at batch 1 — at most as many as the fast path keeps compiled."""
        from t2v.compiled import video_shape

        info = describe(pipeline)
        frames = self.default_frames or info.default_frames(self.max_frames)
        cfg = pipeline.unet.cfg
        width, height = info.size(WARM_ORDER[0])
        shapes = [video_shape(cfg, batch, frames, height, width) for batch in sorted({1, self.batch_max})]
        for aspect in WARM_ORDER[1:]:
            width, height = info.size(aspect)
            shapes.append(video_shape(cfg, 1, frames, height, width))
        return list(dict.fromkeys(shapes))[:pipeline.unet.max_shapes]


def load_models(settings: Settings, device: str) -> Any:
    """T2V_MODEL on `device`, with UPSCALE_MODEL (when set) as its `upscaler`; runs on the worker thread."""
    return ModelSource.of(settings)(device)


def upscaler_of(pipeline: Any) -> Any | None:
    """The upscaler a worker loaded next to its pipeline, or None."""
    return getattr(pipeline, "upscaler", None)


@dataclass(frozen=True)
class ModelInfo:
    """Plain facts about the loaded models: sizes per aspect, default frames, and the upscaler's sizes."""

    sizes: Mapping[str, Size] = field(default_factory=dict)  # empty: no config (bot.jobs.spec.ASPECTS)
    frames: int | None = None  # the model's default clip length
    upscale_sizes: Mapping[str, Size] | None = None  # None: no upscaler is loaded
    upscale_native: Size | None = None  # the upscaler's own size, for aspects it has no preset for

    @property
    def has_upscaler(self) -> bool:
        """Whether the workers loaded an upscaler."""
        return self.upscale_sizes is not None

    def size(self, aspect: str) -> Size:
        """(width, height) of `aspect` for the loaded model; bot.jobs.spec.ASPECTS for aspects it has no preset for."""
        return self.sizes.get(aspect) or ASPECTS[aspect]

    def upscale_size(self, aspect: str) -> Size:
        """(width, height) the upscaler renders `aspect` at: its preset, else its native size."""
        if self.upscale_sizes is None or self.upscale_native is None:
            raise ValueError("no upscaler is loaded")
        return self.upscale_sizes.get(aspect) or self.upscale_native

    def default_frames(self, cap: int) -> int:
        """The model's clip length, at most `cap` (the server's MAX_FRAMES)."""
        return min(self.frames or FALLBACK_FRAMES, cap)

    def sized(self, options: VideoOptions) -> VideoOptions:
        """The options with the loaded model's size for their aspect, unless they already name a size."""
        if options.width is not None:
            return options
        width, height = self.size(options.aspect)
        return replace(options, width=width, height=height)


def describe(pipeline: Any) -> ModelInfo:
    """The ModelInfo of a worker's pipeline (and upscaler); reads configs only, on the worker thread."""
    config = getattr(pipeline, "config", None)
    if config is None:
        return ModelInfo()
    upscaler = getattr(upscaler_of(pipeline), "config", None)
    if upscaler is None:
        return ModelInfo(aspect_sizes(config), config.frames)
    return ModelInfo(aspect_sizes(config), config.frames, aspect_sizes(upscaler), (upscaler.width, upscaler.height))


async def learn(executor: Executor) -> ModelInfo:
    """Ask a loaded worker what it holds; ModelInfo() when no worker loaded a model."""
    if executor.workers == 0:
        return ModelInfo()

    def work(pipeline: Any, progress: ProgressFn, should_cancel: CancelFn) -> ModelInfo:
        return describe(pipeline)

    info = await executor.run(work)
    log.info("model sizes %s, %s frames; upscaler %s", dict(info.sizes) or "from bot.jobs.spec.ASPECTS", info.frames,
             dict(info.upscale_sizes) if info.upscale_sizes is not None else "none")
    return info
