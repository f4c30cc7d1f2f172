"""The models each GPU worker holds, and what the event loop learns about them once they are loaded.

A worker holds `Models`: T2V_MODEL's pipeline and, when UPSCALE_MODEL is set, the upscaler's (loaded by
bot.gpu.source); the work functions (bot.gpu.work) take them from there. The loop never holds a pipeline: `learn` asks
a worker for a `ModelInfo` — frame sizes per aspect for the model and for the upscaler, and the model's default clip
length — plain values read from the configs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.gpu.executor import CancelFn, Executor, ProgressFn
from bot.gpu.styles import Style
from bot.settings import STATUS_EDIT_INTERVAL_S
from t2v.config import ModelConfig
from t2v.presets import aspect_sizes

if TYPE_CHECKING:
    from t2v.pipeline import VideoPipeline
    from t2v.request import GenerationRequest

log = logging.getLogger(__name__)

Size = tuple[int, int]
# The aspects /video offers (t2v's, most used first), with ModelScope's sizes: t2v.aspect_sizes of its config (short
# side 256, long side the nearest multiple of 64; 4:3 is really 5:4, 16:9 is 7:4). Jobs get the loaded model's own
# sizes (ModelInfo); these stand in for models that do not say theirs. Discord shows at most 25 choices.
ASPECTS: dict[str, Size] = aspect_sizes(ModelConfig())
DEFAULT_ASPECT = next(iter(ASPECTS))  # "1:1": a /video's aspect when neither its user nor the server's presets chose
FALLBACK_FRAMES = ModelConfig().frames  # ModelScope's clip length, for models that do not say theirs


@dataclass(frozen=True)
class Models:
    """What one GPU worker holds: T2V_MODEL's pipeline, UPSCALE_MODEL's (the upscaler) when one is set, the styles
    loaded into T2V_MODEL's pipeline (bot.gpu.styles) by name, the request it warms up with, the shapes it rendered
    while idle, and how often its work makes a live preview."""

    pipeline: VideoPipeline
    upscaler: VideoPipeline | None = None
    styles: Mapping[str, Style] = field(default_factory=dict)
    warm_up: GenerationRequest | None = None  # rendered once after loading (bot.gpu.work.warm_up_work); None: none
    idle_rendered: set[Any] = field(default_factory=set)  # compiled shapes rendered while idle to capture their CUDA
    # graphs (bot.gpu.work.capture_while_idle), each once
    preview_interval_s: float = STATUS_EDIT_INTERVAL_S  # at most one live preview per this many seconds: the status
    # edits that show them are as throttled, so a GIF made sooner would never be shown (bot.gpu.previews)


@dataclass(frozen=True)
class ModelInfo:
    """Plain facts about the loaded models: sizes per aspect, default frames, and the upscaler's sizes."""

    sizes: Mapping[str, Size] = field(default_factory=dict)  # empty: a model without a config (ASPECTS)
    frames: int | None = None  # the model's default clip length
    upscale_sizes: Mapping[str, Size] | None = None  # None: no upscaler is loaded
    upscale_native: Size | None = None  # the upscaler's own size, for aspects it has no preset for
    styles: tuple[Style, ...] = ()  # the styles the workers loaded (STYLES_FILE's that fit the model), file order
    warms_up: bool = False  # whether the workers have a warm-up render to run before their first job (GPUs)

    @property
    def has_upscaler(self) -> bool:
        """Whether the workers loaded an upscaler."""
        return self.upscale_sizes is not None

    def size(self, aspect: str) -> Size:
        """(width, height) of `aspect` for the loaded model; ASPECTS' for aspects it has no preset for."""
        return self.sizes.get(aspect) or ASPECTS[aspect]

    def upscale_size(self, aspect: str) -> Size:
        """(width, height) the upscaler renders `aspect` at: its preset, else its native size."""
        if self.upscale_sizes is None or self.upscale_native is None:
            raise ValueError("no upscaler is loaded")
        return self.upscale_sizes.get(aspect) or self.upscale_native

    def default_frames(self, cap: int) -> int:
        """The model's clip length, at most `cap` (the server's MAX_FRAMES)."""
        return min(self.frames or FALLBACK_FRAMES, cap)

    def video_frames(self, default_frames: int | None, cap: int) -> int:
        """A /video's frames when neither its user nor the server's presets chose: DEFAULT_FRAMES (`default_frames`)
        when set, else the model's clip length within MAX_FRAMES (`cap`)."""
        return default_frames or self.default_frames(cap)


def describe(models: Models) -> ModelInfo:
    """The ModelInfo of a worker's models; reads configs only, on the worker thread."""
    styles, warms_up = tuple(models.styles.values()), models.warm_up is not None
    config = getattr(models.pipeline, "config", None)
    if config is None:
        return ModelInfo(styles=styles, warms_up=warms_up)
    upscaler = getattr(models.upscaler, "config", None)
    if upscaler is None:
        return ModelInfo(aspect_sizes(config), config.frames, styles=styles, warms_up=warms_up)
    return ModelInfo(aspect_sizes(config), config.frames, aspect_sizes(upscaler), (upscaler.width, upscaler.height),
                     styles, warms_up)


async def learn(executor: Executor) -> ModelInfo:
    """Ask a loaded worker what it holds; ModelInfo() when no worker loaded a model."""
    if executor.workers == 0:
        return ModelInfo()

    def work(models: Models, progress: ProgressFn, should_cancel: CancelFn) -> ModelInfo:
        return describe(models)

    info = await executor.run(work)
    log.info("model sizes %s, %s frames; upscaler %s; styles %s", dict(info.sizes) or "ModelScope's (ASPECTS)",
             info.frames, dict(info.upscale_sizes) if info.upscale_sizes is not None else "none",
             ", ".join(style.name for style in info.styles) or "none")
    return info
