"""The discrete diffusion schedule of ModelScope ("linear_sd" betas) and the sampling time grids."""

from __future__ import annotations

import torch


class Schedule:
    """ᾱ_t for t = 0..T-1 in float64 from betas = linspace(sqrt(start), sqrt(end), T)² (modelscope diffusion.py)."""

    def __init__(self, num_timesteps: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.0120):
        betas = torch.linspace(beta_start**0.5, beta_end**0.5, num_timesteps, dtype=torch.float64) ** 2
        self.num_timesteps = num_timesteps
        self.alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)  # ᾱ₀ = 0.99915, ᾱ₉₉₉ = 0.0046601

    def alpha_bar(self, t: int) -> float:
        """ᾱ_t; t < 0 stands for the end of sampling and uses ᾱ₀ (no "set_alpha_to_one")."""
        return float(self.alphas_cumprod[max(t, 0)])

    def ddim_timesteps(self, steps: int) -> list[int]:
        """DDIM grid: stride T//steps, offset 1 ("leading"): 981, 961, …, 1 for 50 steps; exactly `steps` long."""
        if not 1 <= steps <= self.num_timesteps:
            raise ValueError(f"steps={steps} is outside 1..{self.num_timesteps}")
        stride = self.num_timesteps // steps
        return [min(1 + i * stride, self.num_timesteps - 1) for i in reversed(range(steps))]

    def linspace_timesteps(self, steps: int) -> list[int]:
        """Evenly spaced grid from T-1 down to 1 (used by DPM-Solver++)."""
        if not 1 <= steps <= self.num_timesteps:
            raise ValueError(f"steps={steps} is outside 1..{self.num_timesteps}")
        grid = torch.linspace(self.num_timesteps - 1, 1, steps, dtype=torch.float64).round().long()
        return grid.tolist()
