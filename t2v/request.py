"""What a generation is asked for and what it gives back: the request, its limits, and the result (torch-free).

Every check of a request's values happens here, once, on construction; the sampling defaults come from
t2v.config.SamplerDefaults, and frames, width and height left at None are the loaded model's (`with_defaults`).
"""

from __future__ import annotations

import inspect
import numbers
import unicodedata
from dataclasses import dataclass, field, replace
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
_OPTIONAL = ("seed", "frames", "width", "height")  # fields whose None has a meaning (see GenerationRequest)
MODEL_DEFAULTS = ("frames", "width", "height")  # a ModelConfig's fields that fill a request's None
# Unicode categories that show nothing: controls (U+0001, NUL), format characters (U+FEFF, U+200B) and spaces;
# open_clip's tokenizer drops most of them, so a prompt of only these would render unconditioned
INVISIBLE = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})


def empty_prompt(prompt: str, name: str = "prompt") -> str | None:
    """Why `prompt` gives the text encoder nothing to read (the line names it `name`): nothing, only spaces, or only
    invisible characters (controls, format characters: the tokenizer drops them); None once any character shows. A
    negative prompt has no such rule: an empty one, or one the tokenizer reads as empty, is the unconditional one."""
    if not prompt.strip():
        return f"{name} is empty: describe the video to generate"
    if any(unicodedata.category(char) not in INVISIBLE for char in prompt):
        return None
    return f"{name} is empty: {prompt!r:.60} holds only invisible characters; describe the video to generate"


def not_text(prompt: str, name: str = "prompt") -> str | None:
    """Why `prompt` is not text: it holds a lone surrogate (U+D800–U+DFFF), which is no character — bytes decoded
    with errors="surrogateescape", as Python decodes a command line that is not UTF-8 — and which the tokenizer would
    read as a stand-in token for what was meant; None for text."""
    try:
        prompt.encode()
    except UnicodeEncodeError as exc:
        return (f"{name} {prompt!r:.60} holds {exc.object[exc.start:exc.end]!r}, a lone surrogate, which is no "
                "character; decode the text from its bytes with the encoding it was written in")
    return None


def negative_is_prompt(prompt: str, negative: str) -> bool:
    """Whether a negative prompt is the prompt itself, in case and spacing too (as the tokenizer reads both: lower
    case, runs of spaces as one): guidance then steers toward it and away from it at once, and has nothing to work
    with. An empty negative prompt is the unconditional one, never the prompt."""
    return bool(negative.strip()) and " ".join(negative.split()).casefold() == " ".join(prompt.split()).casefold()


def check_value(name: str, value: Any, shown: str | None = None) -> Any:
    """`value` as the request field `name` holds it (a NumPy scalar as a plain int or float); InvalidRequest unless
    it fits, the message starting with `shown` (default `name=value`, the CLI passes `--name value`) and saying what
    is allowed."""
    shown = f"{name}={value!r}" if shown is None else shown
    if name == "sampler":
        if value not in SAMPLER_NAMES:
            raise InvalidRequest(f"{shown} is not one of {', '.join(sorted(SAMPLER_NAMES))}")
        return value
    value = plain_number(value, shown, real=name == "guidance")
    low, high = value_range(name)
    if not low <= value <= high:
        raise InvalidRequest(f"{shown} is outside the allowed range {low}–{high}")
    if name in ("width", "height") and value % 64:
        raise InvalidRequest(f"{shown} must be a multiple of 64 (64, 128, …, 1024)")
    return value


def value_range(name: str) -> tuple[int | float, int | float]:
    """The lowest and highest value of a numeric request field (seed, steps, guidance, frames, width, height, fps)."""
    return (0, MAX_SEED) if name == "seed" else LIMITS["size" if name in ("width", "height") else name]


def plain_number(value: Any, shown: str, real: bool = False) -> int | float:
    """`value` as a plain int (with `real`: an int or float), so NumPy's scalars (np.int64 from an array, np.float32)
    count as the numbers they are; a bool is not one, nor a numeric string. InvalidRequest starting with `shown`."""
    kind, wanted = (numbers.Real, "a number") if real else (numbers.Integral, "an integer")
    if isinstance(value, bool) or not isinstance(value, kind):
        raise InvalidRequest(f"{shown} must be {wanted}, got {type(value).__name__}")
    if isinstance(value, int | float):
        return value
    return int(value) if isinstance(value, numbers.Integral) else float(value)


@dataclass(frozen=True)
class GenerationRequest:
    """What to generate; validated on construction (each error names the value and the allowed range).

    frames, width and height left at None are the loaded model's (its `config.frames`, `.width`, `.height`: 16 ×
    256×256 for ModelScope's model, 4 × 64×64 for tiny-random); the pipeline fills them in (`with_defaults`).
    """

    prompt: str
    negative_prompt: str = ""
    seed: int | None = None  # None: a new random seed for each generation (the result says which)
    steps: int = _DEFAULTS.steps
    guidance: float = _DEFAULTS.guidance
    frames: int | None = None
    width: int | None = None
    height: int | None = None
    fps: int = _DEFAULTS.fps
    sampler: str = _DEFAULTS.sampler

    def __post_init__(self) -> None:
        for name in ("prompt", "negative_prompt"):  # a bytes or None prompt would fail deep in the tokenizer
            if not isinstance(getattr(self, name), str):
                raise InvalidRequest(f"{name} must be a str, got {type(getattr(self, name)).__name__}")
            problem = not_text(getattr(self, name), name)
            if problem is not None:
                raise InvalidRequest(problem)
        problem = empty_prompt(self.prompt)
        if problem is not None:
            raise InvalidRequest(problem)
        for name in ("steps", "guidance", "frames", "fps", "width", "height", "seed", "sampler"):
            value = getattr(self, name)
            if value is not None or name not in _OPTIONAL:  # frozen: store NumPy scalars as the plain numbers
                object.__setattr__(self, name, check_value(name, value))

    def with_defaults(self, config: ModelConfig) -> GenerationRequest:
        """This request with the model's default frames, width and height in place of None."""
        values = {name: getattr(config, name) for name in MODEL_DEFAULTS if getattr(self, name) is None}
        return replace(self, **values) if values else self


def check_callable(name: str, value: Any, arguments: tuple[str, ...], example: str, optional: bool = False) -> None:
    """InvalidRequest unless `value` can be called with `arguments` (their names, for the message): a callback that is
    no function (`on_step=5`) or takes other arguments (`on_step=lambda step: ...`) would otherwise fail with a
    TypeError mid-render, after the prompt was encoded and a step had run. A callable whose signature Python cannot
    read (some built-ins) is taken as it is. `optional`: the message says None would do too."""
    advice = f"pass a function (or None), such as {example}" if optional else f"pass a function such as {example}"
    if not callable(value):
        raise InvalidRequest(f"{name}={value!r:.60} is not callable; {advice}")
    try:
        signature = inspect.signature(value)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(*arguments)
    except TypeError:
        given = f"({', '.join(arguments)})" if arguments else "no arguments"
        raise InvalidRequest(f"{name}={value!r:.60} takes {signature}, but it is called with {given}; {advice}") \
            from None


def check_request(request: Any, call: str) -> GenerationRequest:
    """`request` if it is a GenerationRequest; InvalidRequest saying how to make one (a bare prompt is the likely
    mistake) rather than an AttributeError from deep inside `call`."""
    if not isinstance(request, GenerationRequest):
        raise InvalidRequest(f"{call} takes a GenerationRequest, got {type(request).__name__} {request!r:.60}; build "
                             "one with GenerationRequest(prompt, ...) or pipe.request(prompt, ...)")
    return request


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
    negative_truncated: bool = False
    negative_unused: bool = False  # a negative prompt at guidance 1: only the prompt's pass runs

    @property
    def notes(self) -> list[str]:
        """Human-readable caveats about this result."""
        notes = []
        if self.prompt_truncated:
            notes.append("the prompt was longer than 77 CLIP tokens and was truncated")
        if self.negative_truncated:
            notes.append("the negative prompt was longer than 77 CLIP tokens and was truncated")
        if self.negative_unused:
            notes.append("the negative prompt has no effect at guidance 1 (only the prompt's pass runs); raise the "
                         "guidance to use it")
        if self.is_noise:
            notes.append("this model has random weights (tiny-random preset): the video is noise")
        return notes
