"""What a generation is asked for and what it gives back: the request, its limits, and the result (torch-free).

Every check of a request's values happens here, once, on construction; defaults come from t2v.config.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from t2v.config import ModelConfig, SamplerDefaults
from t2v.errors import InvalidRequest

if TYPE_CHECKING:
    import numpy as np
    import torch

MAX_SEED = 2**63 - 1
LIMITS = {"steps": (1, 150), "guidance": (1.0, 30.0), "frames": (1, 64), "size": (64, 1024), "fps": (1, 60)}
BATCH_KEYS = ("frames", "width", "height", "steps", "sampler")  # what the requests of one batch must share
SAMPLER_NAMES = ("ddim", "dpmpp-2m")  # the keys of t2v.sampling.SAMPLERS
_DEFAULTS = SamplerDefaults()
_OPTIONAL = ("seed",)  # fields whose None has a meaning (see GenerationRequest)


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise InvalidRequest(f"{name}={value!r} is outside the allowed range {low}–{high}")


def check_value(name: str, value: Any) -> None:
    """Raise InvalidRequest naming `value` and what is allowed unless it fits the request field `name`."""
    if name == "sampler":
        if value not in SAMPLER_NAMES:
            raise InvalidRequest(f"sampler={value!r} is not one of {', '.join(sorted(SAMPLER_NAMES))}")
        return
    kinds, kind = ((int, float), "a number") if name == "guidance" else ((int,), "an integer")
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise InvalidRequest(f"{name}={value!r} must be {kind}")
    low, high = (0, MAX_SEED) if name == "seed" else LIMITS["size" if name in ("width", "height") else name]
    _check_range(name, value, low, high)
    if name in ("width", "height") and value % 64:
        raise InvalidRequest(f"{name}={value} must be a multiple of 64 (64, 128, …, 1024)")


@dataclass(frozen=True)
class GenerationRequest:
    """What to generate; validated on construction (each error names the value and the allowed range)."""

    prompt: str
    negative_prompt: str = ""
    seed: int | None = None  # None: a new random seed for each generation (the result says which)
    steps: int = _DEFAULTS.steps
    guidance: float = _DEFAULTS.guidance
    frames: int = ModelConfig.frames
    width: int = ModelConfig.width
    height: int = ModelConfig.height
    fps: int = _DEFAULTS.fps
    sampler: str = _DEFAULTS.sampler

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise InvalidRequest("prompt is empty: describe the video to generate")
        for name in ("steps", "guidance", "frames", "fps", "width", "height", "seed", "sampler"):
            value = getattr(self, name)
            if value is not None or name not in _OPTIONAL:
                check_value(name, value)


def check_batch(requests: list[GenerationRequest]) -> GenerationRequest:
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
