"""Historical averaging (Salimans et al. 2016; DATS6202 lecture notes, docs/references.md): each player's loss
gains w·‖θ − θ̄‖², θ̄ the mean of every value θ has taken, which damps the oscillations of simultaneous gradient
play."""

from __future__ import annotations

from typing import Annotated

import torch
from torch import nn

from gan_lab.capabilities import TrickCaps
from gan_lab.checks import at_least
from gan_lab.tricks.base import Trick


class HistoricalAverage(nn.Module):
    """w·‖θ − θ̄‖² with θ̄ the mean of θ over every value it has taken (initial one included).

    θ̄ is a constant in the penalty's gradient; ``update`` folds in the value after each step.
    Kept as buffers so it lands in checkpoints.
    """

    def __init__(self, module: nn.Module, weight: float):
        super().__init__()
        self.weight = weight
        self.names = [n for n, _ in module.named_parameters()]
        for i, p in enumerate(module.parameters()):
            self.register_buffer(f"mean_{i}", p.detach().clone())
        self.count = 1  # values averaged so far (a Python int: no device sync per step)

    def get_extra_state(self) -> dict:
        return {"count": self.count}

    def set_extra_state(self, state: dict) -> None:
        self.count = int(state["count"])

    def _means(self) -> list[torch.Tensor]:
        return [getattr(self, f"mean_{i}") for i in range(len(self.names))]

    def penalty(self, module: nn.Module) -> torch.Tensor:
        params = list(module.parameters())
        diffs = torch._foreach_sub(params, self._means())
        return self.weight * torch.stack([d.pow(2).sum() for d in diffs]).sum()

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        self.count += 1
        # θ̄ ← θ̄ + (θ − θ̄)/t
        torch._foreach_lerp_(self._means(), [p.detach() for p in module.parameters()], 1.0 / self.count)


class HistoricalAveraging(Trick):
    name = "historical_averaging"
    historical_averaging: Annotated[float, at_least(0.0), "the weight w of w·‖θ − θ̄‖² in each player's loss"] = 0.0
    order = 40

    @property
    def caps(self) -> TrickCaps:
        return TrickCaps(capture_blocker="the running mean's weight 1/t changes on the host every step")

    def attach(self, system) -> None:  # the averages live on the system, so they land in its checkpoints
        system.d_history = HistoricalAverage(system.discriminator, self.historical_averaging)
        system.g_history = HistoricalAverage(system.generator, self.historical_averaging)

    def d_term(self, system) -> torch.Tensor:
        return system.d_history.penalty(system.discriminator)

    def after_d_step(self, system) -> None:
        system.d_history.update(system.discriminator)

    def g_term(self, system) -> torch.Tensor:
        return system.g_history.penalty(system.generator)

    def after_g_step(self, system) -> None:
        system.g_history.update(system.generator)
