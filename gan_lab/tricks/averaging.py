"""Running averages of a player's weights: historical averaging's penalty and the EMA generator."""

from __future__ import annotations

import copy

import torch
from torch import nn


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


class EMA(nn.Module):
    """An exponential moving average of G (Yazıcı 2019): ema ← decay·ema + (1 − decay)·θ."""

    def __init__(self, module: nn.Module, decay: float):
        super().__init__()
        self.decay = decay
        self.module = copy.deepcopy(module).requires_grad_(False)

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        ema_params = list(self.module.parameters())
        torch._foreach_lerp_(ema_params, [p.detach() for p in module.parameters()], 1.0 - self.decay)
        for ema_b, b in zip(self.module.buffers(), module.buffers()):
            ema_b.copy_(b)  # batch-norm statistics are copied, not averaged
