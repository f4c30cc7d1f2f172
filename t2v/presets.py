"""Per-model presets: the default size and length of a loaded model, and aspect-ratio sizes near its native area.

Default width, height and frames, first match wins:

1. explicit arguments: `load_pipeline(source, width=, height=, frames=)`, `convert(..., width=, height=, frames=)`;
2. a `t2v_defaults.json` the operator drops into the model directory, e.g. `{"width": 576, "height": 320,
   "frames": 24}` (any subset of width, height, frames, name; sizes multiples of 64 in 64–1024, frames 1–64);
3. a published fine-tune recognised by a fragment of the directory path (`KNOWN_MODELS`, from the model cards;
   Hugging Face cache folders such as `models--cerspense--zeroscope_v2_576w/snapshots/…` match too). Not for
   exports, whose manifest already holds the defaults resolved when they were converted;
4. the model's own files: ModelScope's `max_frames` at 256×256; diffusers' unet `sample_size` × 8 and 16 frames.
   Every diffusers copy says `sample_size: 32` (256 px), zeroscope's too (model-spec §6.5), hence 2 and 3;
   model_index.json and the README name no size.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from t2v.config import ModelConfig
from t2v.errors import InvalidRequest, WeightsError
from t2v.request import LIMITS, check_value

log = logging.getLogger(__name__)

DEFAULTS_FILE = "t2v_defaults.json"
# path fragment (lower case) → (width, height, frames) the fine-tune was trained at (cerspense model cards)
KNOWN_MODELS: dict[str, tuple[int, int, int]] = {
    "zeroscope_v2_576w": (576, 320, 24),
    "zeroscope_v2_xl": (1024, 576, 24),
    "zeroscope_v2_30x448x256": (448, 256, 30),
    "zs2_576w": (576, 320, 24),  # the folders of cerspense/zeroscope_v2_1111models (ModelScope layout)
    "zs2_xl": (1024, 576, 24),
    "text-to-video-ms-1.7b": (256, 256, 16),
}
# aspect name → (width units, height units)
ASPECTS: dict[str, tuple[int, int]] = {"1:1": (1, 1), "16:9": (16, 9), "9:16": (9, 16), "4:3": (4, 3), "3:4": (3, 4)}


def check_defaults(values: Mapping[str, Any], where: str, error: type[Exception] = WeightsError) -> dict[str, Any]:
    """Validate default width/height/frames (and name); the `error` names the value, the range and `where`."""
    unknown = set(values) - {"width", "height", "frames", "name"}
    if unknown:
        raise error(f"{where}: unknown keys {sorted(unknown)}; allowed are width, height, frames, name")
    out = {}
    for key, value in values.items():
        if value is None:
            continue
        if key == "name":
            if not isinstance(value, str) or not value.strip():
                raise error(f"{where}: name={value!r} must be a non-empty string")
        else:
            try:
                check_value(key, value)  # a model's default must be a valid request value
            except InvalidRequest as exc:
                raise error(f"{where}: {exc}") from exc
        out[key] = value
    return out


def read_defaults_file(directory: Path) -> dict[str, Any]:
    """The validated contents of `directory/t2v_defaults.json`, or {} when there is none."""
    path = directory / DEFAULTS_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_bytes().decode("utf-8-sig"))  # a byte-order mark is fine
    except PermissionError as exc:
        raise WeightsError.permission_denied(path) from exc
    except UnicodeDecodeError as exc:
        raise WeightsError(f"{path} is not UTF-8 text (byte {exc.object[exc.start]:#x} at offset {exc.start}); save "
                           "it as UTF-8 JSON") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise WeightsError(f"{path} is not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise WeightsError(f"{path} must hold a JSON object such as {{\"width\": 576, \"height\": 320}}")
    return check_defaults(data, str(path))


def known_model(directory: Path) -> tuple[str, tuple[int, int, int]] | None:
    """(fragment, (width, height, frames)) of a published fine-tune named anywhere in the directory's path."""
    parts = [part.lower() for part in directory.resolve().parts]
    for fragment in sorted(KNOWN_MODELS, key=len, reverse=True):
        if any(fragment in part for part in parts):
            return fragment, KNOWN_MODELS[fragment]
    return None


def for_directory(config: ModelConfig, directory: Path, by_name: bool = True) -> ModelConfig:
    """Apply rules 2 and 3 above (rule 3 only with `by_name`) to the config read from `directory`."""
    values: dict[str, Any] = {}
    known = known_model(directory) if by_name else None
    if known is not None:
        fragment, (width, height, frames) = known
        values = {"width": width, "height": height, "frames": frames, "name": fragment}
    values |= read_defaults_file(directory)
    if values:
        log.info("model defaults for %s: %s", directory, values)
    return replace(config, **values)


def check_overrides(width: Any = None, height: Any = None, frames: Any = None) -> dict[str, Any]:
    """Rule 1's values, those given: InvalidRequest (a caller's bad argument, not a bad model) unless each is a valid
    request value."""
    return check_defaults({"width": width, "height": height, "frames": frames}, "model defaults", InvalidRequest)


def with_overrides(config: ModelConfig, width: int | None = None, height: int | None = None,
                   frames: int | None = None) -> ModelConfig:
    """Rule 1: explicit default width/height/frames, validated (check_overrides)."""
    return replace(config, **check_overrides(width, height, frames))


def _round64(value: float) -> int:
    return max(64, math.floor(value / 64 + 0.5) * 64)


def aspect_sizes(config: ModelConfig) -> dict[str, tuple[int, int]]:
    """(width, height) per aspect name: multiples of 64 near the native pixel area, short side ≥ the native one.

    The ideal size at the native area is scaled up until its short side reaches the native short side (so a
    square model keeps the subject scale it was trained at: 16:9 → 448×256 on the 256² model, 576×320 on
    zeroscope_v2_576w), then the short side is rounded to a multiple of 64 and the long side set to the multiple
    of 64 nearest to short × ratio (capped at 1024).
    """
    area, native_short = config.width * config.height, min(config.width, config.height)
    high = LIMITS["size"][1]
    sizes = {}
    for name, (a, b) in ASPECTS.items():
        ratio = max(a, b) / min(a, b)
        short = max(math.sqrt(area / ratio), native_short)
        short64 = min(_round64(short), high)
        long64 = min(_round64(short64 * ratio), high)
        sizes[name] = (long64, short64) if a >= b else (short64, long64)
    return sizes
