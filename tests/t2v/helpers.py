"""Small helpers shared by the t2v tests."""

from __future__ import annotations

import torch


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """The norm of a - b relative to b's."""
    return float((a - b).norm() / b.norm())
