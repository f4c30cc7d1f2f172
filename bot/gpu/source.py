"""What every GPU worker loads: T2V_MODEL, UPSCALE_MODEL beside it, and t2v's fast path where it applies.

On GPUs (T2V_OPTIMIZE) the worker switches T2V_MODEL to t2v's fast path and takes jobs at once: a shape with nothing
compiled renders on the eager path (CUDA-graphed) while `bot.gpu.compiles` compiles it in the background, and the
shapes expected first (the default /video shape, at batch 1 then BATCH_MAX, then the other aspects) are queued there
at load. Importing this module loads no torch: the models are loaded on the workers.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import re
import threading
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from bot.gpu.compiles import COMPILES, label
from bot.gpu.models import ASPECTS, DEFAULT_ASPECT, Models, describe
from bot.gpu.styles import Style, load_styles, read_styles
from bot.settings import BATCH_MAX, COMPILE_CACHE_MAX_GB, MAX_FRAMES, STATUS_EDIT_INTERVAL_S, Settings, fast_path_on
from t2v.config import SamplerDefaults
from t2v.request import GenerationRequest
from t2v.sizes import GB, bytes_text

if TYPE_CHECKING:
    from t2v.pipeline import VideoPipeline

log = logging.getLogger(__name__)

WARM_UP_PROMPT = "a warm-up render before the first job"


@dataclass(frozen=True)
class ModelSource:
    """What every worker loads, as plain values: a Ray worker is sent this, never the settings (they hold the token).

    Calling it with a device loads T2V_MODEL there, with UPSCALE_MODEL (when set) as the upscaler, and switches
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
    default_guidance: float = SamplerDefaults.guidance  # DEFAULT_GUIDANCE: 1.0 makes /video's UNet calls unguided
    backend: str = "inductor"  # torch.compile's backend (CPU tests: "eager")
    styles: tuple[Style, ...] = ()  # STYLES_FILE's styles whose files passed the start check
    compile_cache_max_gb: float = COMPILE_CACHE_MAX_GB  # T2V_COMPILE_CACHE_MAX_GB: pruned to this at each worker
    # start and as compiles fill it (CacheBudget); 0: no limit
    preview_interval_s: float = STATUS_EDIT_INTERVAL_S  # STATUS_EDIT_INTERVAL_S: a live preview at most this often

    @classmethod
    def of(cls, settings: Settings) -> ModelSource:
        """The models the settings name, and how the workers prepare them (SettingsError: a required style's file
        is wrong; an optional one is left out with a warning)."""
        dtype = None if settings.t2v_dtype == "auto" else settings.t2v_dtype
        catalog = read_styles(settings.styles_file, check_files=settings.t2v_executor != "ray")  # ray: workers'
        for name, problem in catalog.skipped.items():
            log.warning("optional style %s is left out: %s", name, problem)
        return cls(settings.t2v_model, dtype, settings.upscale_model, settings.t2v_optimize,
                   str(settings.compile_cache.absolute()), settings.batch_max, settings.default_frames,
                   settings.max_frames, settings.default_guidance, styles=catalog.styles,
                   compile_cache_max_gb=settings.t2v_compile_cache_max_gb,
                   preview_interval_s=settings.status_edit_interval_s)

    def __call__(self, device: str) -> Models:
        return self.prepare(load_pipeline(self.model, device=device, dtype=self.dtype), device)

    def prepare(self, pipeline: VideoPipeline, device: str) -> Models:
        """What a worker does with its loaded T2V_MODEL: its styles checked against it and loaded (SettingsError: a
        required one does not fit), the upscaler beside it, the fast path when it applies, and the live previews'
        interval (STATUS_EDIT_INTERVAL_S) for its work."""
        styles = load_styles(pipeline, self.styles)
        upscaler = None
        if self.upscale_model is not None:  # in float16 under T2V_DTYPE=fp8: fp8's scales are calibrated by a
            # text-to-video render, not the upscaler's video-to-video work, and it was never measured there
            dtype = None if self.dtype == "fp8" else self.dtype
            upscaler = load_pipeline(self.upscale_model, device=device, dtype=dtype)
        models = Models(pipeline, upscaler, styles, preview_interval_s=self.preview_interval_s)
        if self.fast_on(device):
            try:
                self._make_fast(models, device)
            except Exception as error:
                raise RuntimeError(f"the fast path (T2V_OPTIMIZE={self.optimize}) failed on {device}: {error}; "
                                   "T2V_OPTIMIZE=off serves without it") from error
        return replace(models, warm_up=self.warm_up_request(models, device))

    def fast_on(self, device: str) -> bool:
        """Whether workers on `device` use t2v's fast path."""
        return fast_path_on(self.optimize, device)

    def _make_fast(self, models: Models, device: str) -> None:
        """t2v.fast.optimize with compiles in the background thread, and the expected shapes queued there."""
        from t2v import compiled, fast  # lazily, and looked up at call time: tests stand in for them

        pipeline = models.pipeline
        budget = cache_budget(self.compile_cache, self.compile_cache_max_gb * GB)
        held, removed = budget.prune()  # before any compile; then after compiles, as the cache grows (CacheBudget)
        COMPILES.after_compile = budget.after_compile
        # the worker captures CUDA graphs while the compile thread runs its compiles' first runs on the same GPU:
        # they take turns under one lock per worker (t2v.compiled.GpuLock)
        fast.optimize(pipeline, cache_dir=self.compile_cache, backend=self.backend, gpu_lock=threading.RLock())
        compiled.compile_in_background()  # the compile thread traces while this worker renders (its docstring)
        pipeline.unet.request_compile = COMPILES.requester(pipeline.unet, device)
        shapes = self.warm_shapes(models)
        COMPILES.warm(pipeline.unet, device, shapes)
        log.info("fast path on %s: serving at once; compiling in the background (cache %s, %s): %s", device,
                 self.compile_cache, on_disk(held, removed, budget.max_bytes),
                 ", ".join(label(shape) for shape in shapes))

    def warm_shapes(self, models: Models) -> list[Any]:
        """The UNet shapes expected first: the default /video shape at batch 1 and BATCH_MAX, then the other
        aspects at batch 1 (guided, or unguided when DEFAULT_GUIDANCE is 1.0) — at most as many as the fast path
        keeps compiled."""
        from t2v.compiled import video_shape  # lazily: it imports torch

        info = describe(models)
        frames = info.video_frames(self.default_frames, self.max_frames)
        unet = models.pipeline.unet
        guided = self.default_guidance != 1.0  # at 1.0 /video's UNet calls are unguided: one row a video
        others = [aspect for aspect in ASPECTS if aspect != DEFAULT_ASPECT]  # by expected use
        width, height = info.size(DEFAULT_ASPECT)
        shapes = [video_shape(unet.cfg, batch, frames, height, width, guided) for batch in sorted({1, self.batch_max})]
        for aspect in others:
            width, height = info.size(aspect)
            shapes.append(video_shape(unet.cfg, 1, frames, height, width, guided))
        return list(dict.fromkeys(shapes))[:unet.max_shapes]

    def warm_up_request(self, models: Models, device: str) -> GenerationRequest | None:
        """What a worker on `device` renders once before its first job, or None: on GPUs, one step of the default
        /video (its aspect, frames and DEFAULT_GUIDANCE: at 1.0 its UNet calls are unguided, another shape). A
        process's first CUDA work costs seconds once — cuDNN and cuBLAS loading, their handles, cuDNN's algorithm
        search, the first CUDA graph captures of the eager UNet and of the text encoder (docs/perf-notes.md row 56:
        7–15 s on an H200) — and would otherwise be the first user's."""
        if not device.startswith("cuda"):
            return None
        info = describe(models)
        width, height = info.size(DEFAULT_ASPECT)
        return GenerationRequest(WARM_UP_PROMPT, seed=0, steps=1, width=width, height=height,
                                 frames=info.video_frames(self.default_frames, self.max_frames),
                                 guidance=self.default_guidance)


def load_pipeline(model: str, device: str, dtype: str | None) -> VideoPipeline:
    """t2v.load_pipeline, imported on the worker (it loads torch)."""
    from t2v.loader import load_pipeline as load

    return load(model, device=device, dtype=dtype)


# the folders inductor writes compiled code to under its cache folder, besides those named by two characters of a
# hash (its generated modules): only these are pruned, so a T2V_COMPILE_CACHE set to a folder holding other files
# (the database's, say) loses none of them
INDUCTOR_FOLDERS = ("fxgraph", "aotautograd", "triton", "cache")
HASHED = re.compile(r"[a-z0-9]{2}")
SHAPE_BYTES = 150 * 2**20  # what one compile adds to the cache, at most about (a UNet shape: ≈ 140 MB on an H200,
# docs/perf-notes.md row 48; a decoder's less)
PRUNING = threading.Lock()  # the workers of one process start together: one prunes, the next finds the cache pruned


def prune_cache(folder: str | None, max_bytes: float) -> tuple[int, int]:
    """Remove the least recently used (last read or written) of inductor's files under `folder` until the rest hold
    at most `max_bytes` (0: no limit); (bytes they held, bytes removed). The compile cache grows with every new shape
    and nothing else prunes it; inductor and Triton take a missing file for a cache miss and compile that part again,
    so pruning costs compile time only."""
    with PRUNING:
        return _prune(folder, max_bytes)


def _prune(folder: str | None, max_bytes: float) -> tuple[int, int]:
    try:
        with os.scandir(folder or "") as entries:
            tops = [entry.path for entry in entries if entry.is_dir(follow_symlinks=False)
                    and (entry.name in INDUCTOR_FOLDERS or HASHED.fullmatch(entry.name))]
    except OSError:  # no folder yet
        tops = []
    files = []
    for root, _, names in itertools.chain.from_iterable(os.walk(top) for top in tops):
        for name in names:
            path = os.path.join(root, name)
            with contextlib.suppress(OSError):  # removed meanwhile
                stat = os.lstat(path)
                files.append((max(stat.st_atime, stat.st_mtime), stat.st_size, path))
    held = sum(size for _, size, _ in files)
    removed = 0
    for _, size, path in sorted(files):
        if not max_bytes or held - removed <= max_bytes:
            break
        with contextlib.suppress(FileNotFoundError):  # another process pruning the same folder took it first
            os.remove(path)
            removed += size
    return held, removed


def on_disk(held: int, removed: int, max_bytes: float) -> str:
    """What a pruning left, for the log: the cache's size, and what it removed to stay within its limit."""
    removal = (f"; {bytes_text(removed)} of its least recently used files removed to stay within "
               f"T2V_COMPILE_CACHE_MAX_GB={max_bytes / GB:g}") if removed else ""
    return f"{bytes_text(held - removed)} on disk{removal}"


class CacheBudget:
    """The compile cache within T2V_COMPILE_CACHE_MAX_GB for the whole life of a process, not only at its start: a
    bot that runs for months compiles each new shape a user asks for, ≈ 140 MB each. Pruned at each worker start,
    then after a background compile whenever the compiles since the last pruning may have taken it past the limit
    (SHAPE_BYTES each), so the cache is walked only when it may be full."""

    def __init__(self, folder: str | None, max_bytes: float) -> None:
        self.folder, self.max_bytes = folder, max_bytes
        self.held = 0  # bytes after the last pruning
        self.compiles = 0  # compiles since

    def prune(self) -> tuple[int, int]:
        """prune_cache now: (bytes held before, bytes removed)."""
        held, removed = prune_cache(self.folder, self.max_bytes)
        self.held, self.compiles = held - removed, 0
        return held, removed

    def after_compile(self) -> None:
        """Called by the compile thread after each compile (bot.gpu.compiles)."""
        self.compiles += 1
        if not self.max_bytes or self.held + self.compiles * SHAPE_BYTES <= self.max_bytes:
            return
        log.info("compile cache %s: %s", self.folder, on_disk(*self.prune(), self.max_bytes))


BUDGETS: dict[tuple[str | None, float], CacheBudget] = {}  # one per cache folder and limit, for all its workers


def cache_budget(folder: str | None, max_bytes: float) -> CacheBudget:
    """The process's CacheBudget for `folder` at `max_bytes`."""
    with PRUNING:
        return BUDGETS.setdefault((folder, max_bytes), CacheBudget(folder, max_bytes))
