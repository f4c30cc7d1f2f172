"""The devices and precisions t2v runs on, named as callers name them: which a pipeline may be loaded on or moved to
(t2v.loader's load_pipeline and convert, VideoPipeline.to, the command line), checked before any weights are read."""

from __future__ import annotations

import torch

from t2v.errors import InvalidRequest, UnsupportedDevice
from t2v.kernels import fp8

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
          "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
# A precision to compute in, not to store: float16 networks with most of the UNet transformers' Linear layers in e4m3
# (t2v.kernels.fp8); GPUs with fp8 tensor cores only, never the default: ≈ 9% faster than float16 on an H100 with the
# GEGLU kernel (1.41 against 1.54 s; 1.46 against 1.57 in the 2026-12-07 same-run), but ≈ 30x further from float32
# (docs/perf-notes.md rows 65, 66, 74 and 75)
FP8 = ("fp8",)


def is_fp8(dtype: torch.dtype | str | None) -> bool:
    """Whether `dtype` names the fp8 precision."""
    return isinstance(dtype, str) and dtype in FP8


def missing_device(name: str | torch.device, cpu: str = "device='cpu'") -> str | None:
    """Why t2v cannot run on the device `name` on this machine (None: it can): cpu, or cuda / cuda:N with that GPU
    present; `cpu` is how the caller names the CPU in its hint (the CLI: `--device cpu`)."""
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        return "not a device name; use cpu, cuda or cuda:N"
    if dev.type == "cpu":
        return None if dev.index in (None, 0) else "the CPU has no numbered devices; use cpu"
    if dev.type != "cuda":
        return f"t2v runs on cpu or cuda (cuda:N), not on {dev.type}"
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        return f"no CUDA GPU is available on this machine; use {cpu}"
    if dev.index is not None and dev.index >= count:
        return f"this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}"
    return None


def check_precision(dtype: torch.dtype | str | None, device: str | torch.device) -> None:
    """Refuse fp8 on a device without fp8 tensor cores, in one line, before any weights are read."""
    reason = fp8.unavailable(device) if is_fp8(dtype) else None
    if reason is not None:
        raise UnsupportedDevice(f"dtype {dtype}: {reason}")


def parse_dtype(dtype: torch.dtype | str | None, device: torch.device) -> torch.dtype:
    """A torch dtype from a name; default float32 on CPU and float16 on GPUs (ModelScope's own autocast dtype).

    Measured on the real-size network: fp16 latents are within 2e-3 of fp32, bf16 only within 1.5e-2. fp8 computes
    in float16 around its e4m3 matrix products.
    """
    if is_fp8(dtype):
        return torch.float16
    if dtype is None:
        return torch.float32 if device.type == "cpu" else torch.float16
    known = ", ".join([*DTYPES, *FP8])
    if isinstance(dtype, torch.dtype):  # any floating dtype the networks can compute in (float64 too); not e4m3
        if not dtype.is_floating_point or dtype.itemsize == 1:
            raise InvalidRequest(f"dtype {dtype} is not a precision the networks compute in; use one of {known}")
        return dtype
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise InvalidRequest(f"dtype {dtype!r} is not one of {known} (or a floating torch.dtype)")
    return DTYPES[dtype]
