"""ModelScope text-to-video (OpenCLIP ViT-H-14 → UNet3D → KL autoencoder) in PyTorch + einops.

The names below are imported on first use (PEP 562), so `from t2v import GenerationRequest, InvalidRequest`
loads neither torch nor open_clip; `from t2v import load_pipeline` does.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "TINY_RANDOM": "t2v.config",
    "ArchitectureError": "t2v.errors",
    "DownloadError": "t2v.errors",
    "GenerationCancelled": "t2v.errors",
    "InvalidRequest": "t2v.errors",
    "LoraError": "t2v.errors",
    "NonFiniteOutput": "t2v.errors",
    "T2VError": "t2v.errors",
    "UnsupportedDevice": "t2v.errors",
    "VideoTooLargeError": "t2v.errors",
    "WeightsError": "t2v.errors",
    "WriteError": "t2v.errors",
    "GenerationRequest": "t2v.request",
    "GenerationResult": "t2v.request",
    "LIMITS": "t2v.request",
    "aspect_sizes": "t2v.presets",
    "Previews": "t2v.preview",
    "animation": "t2v.preview",
    "encode_mp4": "t2v.video",
    "VideoPipeline": "t2v.pipeline",
    "convert": "t2v.loader",
    "load_pipeline": "t2v.loader",
}

__all__ = [
    "LIMITS",
    "TINY_RANDOM",
    "ArchitectureError",
    "DownloadError",
    "GenerationCancelled",
    "GenerationRequest",
    "GenerationResult",
    "InvalidRequest",
    "LoraError",
    "NonFiniteOutput",
    "Previews",
    "T2VError",
    "UnsupportedDevice",
    "VideoPipeline",
    "VideoTooLargeError",
    "WeightsError",
    "WriteError",
    "animation",
    "aspect_sizes",
    "convert",
    "encode_mp4",
    "load_pipeline",
]


def __getattr__(name: str) -> Any:
    """Import an exported name from its home module on first use (submodules such as t2v.fast import as usual)."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 't2v' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
