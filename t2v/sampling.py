"""Samplers with one signature, k-diffusion style: sampler(model, x, schedule, timesteps, callback) -> x.

`model(x, t)` returns the guided noise prediction ε̂ for latents x at integer timestep t. Each sampler walks
the decreasing `timesteps`, then one last step to t = 0's ᾱ₀, and calls `callback(i, total, x0_pred)` after
step i (0-based) so callers can report progress, preview or cancel by raising.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from t2v.schedule import Schedule

EpsModel = Callable[[torch.Tensor, int], torch.Tensor]
StepCallback = Callable[[int, int, torch.Tensor], None]


def _coefficients(rows: list[tuple[float, ...]], like: torch.Tensor) -> torch.Tensor:
    """float64 schedule values cast to the latents' dtype and device, as the reference's `_i` helper casts each one,
    in one copy for the whole walk: a copy from the host per step would make the host wait for the GPU every step."""
    return torch.tensor(rows, dtype=torch.float64).to(like)


@torch.no_grad()
def sample_ddim(model: EpsModel, x: torch.Tensor, schedule: Schedule, timesteps: list[int],
                callback: StepCallback | None = None) -> torch.Tensor:
    """Deterministic DDIM (eta 0, no clamp), step for step as modelscope `GaussianDiffusion.ddim_sample`."""
    total = len(timesteps)
    rows = []
    for i, t in enumerate(timesteps):
        a, a_prev = schedule.alpha_bar(t), schedule.alpha_bar(timesteps[i + 1] if i + 1 < total else -1)
        rows.append((math.sqrt(1.0 / a), math.sqrt(1.0 / a - 1.0), a_prev))
    coefficients = _coefficients(rows, x)  # [steps, 3]
    for i, t in enumerate(timesteps):
        sqrt_recip, sqrt_recipm1, alphas_prev = coefficients[i].unbind()
        eps_out = model(x, t)
        x0 = sqrt_recip * x - sqrt_recipm1 * eps_out
        eps = (sqrt_recip * x - x0) / sqrt_recipm1  # the reference re-derives ε from x̂₀ (identity without clamp)
        x = torch.sqrt(alphas_prev) * x0 + torch.sqrt(1 - alphas_prev) * eps
        if callback is not None:
            callback(i, total, x0)
    return x


@torch.no_grad()
def sample_dpmpp_2m(model: EpsModel, x: torch.Tensor, schedule: Schedule, timesteps: list[int],
                    callback: StepCallback | None = None) -> torch.Tensor:
    """DPM-Solver++(2M), data prediction, multistep, first order on the first and last step (Lu et al. 2022)."""
    total = len(timesteps)
    x0_prev, h_prev = None, None
    for i, t in enumerate(timesteps):
        t_next = timesteps[i + 1] if i + 1 < total else -1
        a, a_next = schedule.alpha_bar(t), schedule.alpha_bar(t_next)
        alpha, sigma = math.sqrt(a), math.sqrt(1.0 - a)
        alpha_next, sigma_next = math.sqrt(a_next), math.sqrt(1.0 - a_next)
        h = math.log(alpha_next / sigma_next) - math.log(alpha / sigma)  # step in log-SNR λ
        x0 = (x - sigma * model(x, t)) / alpha
        if x0_prev is None or i == total - 1:
            d = x0
        else:
            r = h_prev / h
            d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * x0_prev
        x = (sigma_next / sigma) * x - alpha_next * math.expm1(-h) * d
        x0_prev, h_prev = x0, h
        if callback is not None:
            callback(i, total, x0)
    return x


SAMPLERS = {"ddim": (sample_ddim, Schedule.ddim_timesteps), "dpmpp-2m": (sample_dpmpp_2m, Schedule.linspace_timesteps)}


class GuidedDenoiser:
    """Classifier-free guidance in one batched UNet call: ε_u + s·(ε_c − ε_u), batch order [uncond, cond].

    `guidance` is one scale, or a per-video tensor broadcastable to the latents (batches of mixed scales).
    """

    def __init__(self, unet: torch.nn.Module, cond: torch.Tensor, uncond: torch.Tensor,
                 guidance: float | torch.Tensor):
        self.unet, self.guidance = unet, guidance
        self.context = torch.cat([uncond, cond])  # [2b, 77, d]
        self.dtype = next(unet.parameters()).dtype

    def __call__(self, x: torch.Tensor, t: int) -> torch.Tensor:
        if not isinstance(self.guidance, torch.Tensor) and self.guidance == 1.0:  # the conditional pass alone
            cond = self.context[self.context.shape[0] // 2:]
            return self.unet(x.to(self.dtype), self._t(x, t), cond).to(x.dtype)
        both = torch.cat([x, x]).to(self.dtype)
        eps_u, eps_c = self.unet(both, self._t(both, t), self.context).to(x.dtype).chunk(2)
        return eps_u + self.guidance * (eps_c - eps_u)

    @staticmethod
    def _t(x: torch.Tensor, t: int) -> torch.Tensor:
        return torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
