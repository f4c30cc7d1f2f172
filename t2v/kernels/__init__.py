"""Hand-written kernels for the fast path, each opt-in and each with the stock PyTorch op it replaces as fallback:
temporal_attention (Triton: many short frame sequences per program), fp8 (e4m3 Linear layers via _scaled_mm, and
opt-in 3×3 convolutions), conv3x3 (Triton: the implicit-GEMM 3×3 convolution fp8's convolutions run on) and geglu
(Triton: the feed-forward's first GEMM with its GEGLU gate in the epilogue).
"""

from __future__ import annotations

import torch


def triton_unavailable(device: torch.device | str, installed: bool, interpreted: bool) -> str | None:
    """Why a Triton kernel of fp16/bf16 (or fp8) tensor-core dots can never serve `device` (checked once, when the
    fast path is set up), or None; `installed`: Triton imported; `interpreted`: the kernel runs in Triton's
    interpreter (CPU tensors)."""
    if not installed:
        return "triton is not installed"
    device = torch.device(device)
    if device.type == "cpu":
        return None if interpreted else "the kernel runs on CUDA GPUs (on the CPU only under TRITON_INTERPRET=1)"
    if device.type != "cuda":
        return f"the kernel runs on CUDA GPUs, not on {device.type}"
    major, minor = torch.cuda.get_device_capability(device)
    if (major, minor) < (8, 0):
        return f"compute capability {major}.{minor}: the kernel's fp16/bf16 tensor-core dots need 8.0 or later"
    return None
