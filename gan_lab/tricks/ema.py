"""An exponential moving average of G's weights (Yazıcı et al. 2019) draws every sample, grid and metric."""

from __future__ import annotations

import copy
from typing import Annotated

import torch
from torch import nn

from gan_lab.checks import fraction
from gan_lab.tricks.base import Trick


class EMA(nn.Module):
    """ema ← decay·ema + (1 − decay)·θ after every G step; batch-norm statistics are copied, not averaged."""

    def __init__(self, module: nn.Module, decay: float):
        super().__init__()
        self.decay = decay
        self.module = copy.deepcopy(module).requires_grad_(False)

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        ema_params = list(self.module.parameters())
        torch._foreach_lerp_(ema_params, [p.detach() for p in module.parameters()], 1.0 - self.decay)
        for ema_b, b in zip(self.module.buffers(), module.buffers()):
            ema_b.copy_(b)


class GeneratorEMA(Trick):
    name = "ema"
    ema: Annotated[float, fraction(), "the decay of an exponential moving average of G's weights, which draws "
                                      "every sample (e.g. 0.999)"] = 0.0
    order = 60  # after historical averaging's update of G's average

    def attach(self, system) -> None:
        system.generator_ema = EMA(system.generator, self.ema)  # GAN.sampler draws from it

    def after_g_step(self, system) -> None:
        system.generator_ema.update(system.generator)
