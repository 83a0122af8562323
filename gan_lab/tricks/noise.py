"""Instance noise (Sønderby 2017; Arjovsky & Bottou 2017; seed 004): N(0, σ²) on every D input.

Real and fake alike, so the two distributions' supports overlap and D cannot separate them
perfectly; σ anneals to 0 so the game ends on the clean data.
"""

from __future__ import annotations

import torch


class InstanceNoise:
    def __init__(self, sigma: float, schedule: str = "linear", iterations: int = 1):
        self.sigma, self.schedule, self.iterations = sigma, schedule, max(iterations, 1)

    def sigma_at(self, iteration: int) -> float:
        if self.schedule == "constant":
            return self.sigma
        return self.sigma * max(0.0, 1.0 - iteration / self.iterations)  # linear: σ at 0, 0 at the end

    def __call__(self, x: torch.Tensor, iteration: int) -> torch.Tensor:
        sigma = self.sigma_at(iteration)
        return x + sigma * torch.randn_like(x) if sigma > 0 else x
