"""Instance noise (Sønderby 2017; Arjovsky & Bottou 2017; LAMBDA lecture notes,
docs/references.md): N(0, σ²) on every D input.

Real and fake alike, so the two distributions' supports overlap and D cannot separate them
perfectly; σ anneals linearly to 0 (``linear``) over the first ``instance_noise_until`` of the run
(1.0: all of it) so the game ends on the clean data, or stays (``constant``). σ is logged as
``train/instance_noise_sigma``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

import torch

from gan_lab.capabilities import TrickCaps
from gan_lab.checks import at_least, fraction
from gan_lab.tricks.base import Trick


class InstanceNoise(Trick):
    name = "instance_noise"
    instance_noise: Annotated[float, at_least(0.0), "σ of N(0, σ²) on every D input, real and fake, at iteration "
                                                  "0"] = 0.0
    instance_noise_schedule: Annotated[Literal["linear", "constant"], "linear: σ anneals to 0; constant: it "
                                                                      "stays"] = "linear"
    instance_noise_until: Annotated[float, fraction(low_open=True, high_open=False),
                                    "linear: the share of the run over which σ falls to 0"] = 1.0
    order = 30  # after augmentation: the noise is on what D finally sees

    @property
    def caps(self) -> TrickCaps:
        if self.instance_noise_schedule == "constant":
            return TrickCaps()
        return TrickCaps(capture_blocker="σ anneals on the host every iteration (instance_noise_schedule=constant "
                                         "can be captured)")

    def sigma_at(self, iteration: int, iterations: int) -> float:
        if self.instance_noise_schedule == "constant":
            return self.instance_noise
        span = max(self.instance_noise_until * iterations, 1.0)
        return self.instance_noise * max(0.0, 1.0 - iteration / span)  # linear: σ at 0, 0 from until·iterations on

    def noise(self, x: torch.Tensor, iteration: int, iterations: int) -> Callable[[torch.Tensor], torch.Tensor]:
        """y ↦ y + σε, with ε ~ N(0, I) drawn now for a batch shaped like x."""
        sigma = self.sigma_at(iteration, iterations)
        if not sigma > 0:
            return lambda y: y
        noise = sigma * torch.randn_like(x)
        return lambda y: y + noise

    def noised(self, x: torch.Tensor, iteration: int, iterations: int) -> torch.Tensor:
        return self.noise(x, iteration, iterations)(x)

    def d_draw(self, system, x: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        return self.noise(x, system.iteration, system.iterations)

    def d_input(self, system, x: torch.Tensor) -> torch.Tensor:
        return self.d_draw(system, x)(x)

    def log_row(self, system) -> dict[str, torch.Tensor]:
        return {"instance_noise_sigma": torch.tensor(self.sigma_at(system.iteration, system.iterations))}
