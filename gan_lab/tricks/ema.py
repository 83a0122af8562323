"""An exponential moving average of G's weights (Yazıcı et al. 2019) draws every sample, grid and metric.

After every G update, θ̂ ← β θ̂ + (1 − β) θ, with β either

* ``tricks.ema`` itself (a fixed decay per G update, e.g. 0.999), or
* from a half-life in images, as StyleGAN2-ADA sets it (Karras et al. 2020, "Training Generative Adversarial
  Networks with Limited Data"; NVlabs/stylegan2-ada-pytorch ``training/training_loop.py``): with
  ``tricks.ema_kimg`` = K, B the images of one G update over every rank (train.batch_size × processes) and
  n the images G has been trained on before this update (iterations done × B),

      half-life h = K·1000,   or with ``tricks.ema_rampup`` = r:  h = min(K·1000, n·r)
      β = 0.5^(B / max(h, 1e-8))

  so the average forgets half its weight every h images; the ramp-up keeps h at a share r of the images seen, so
  early on (when G changes fast) the average is short (β = 0 at the first update: a copy of G). −ADA: K = 10
  (its CIFAR-10: 500 with r = 0.05). K is read at every update, so a schedule may move it during a run.

Batch-norm statistics and other buffers (StyleGAN2's w̄) are copied from G, not averaged, as the reference does.
"""

from __future__ import annotations

import copy
from typing import Annotated

import torch
from torch import nn

from gan_lab.capabilities import TrickCaps
from gan_lab.checks import at_least, fraction
from gan_lab.distributed import Ranks
from gan_lab.tricks.base import Trick, batch_size


class EMA(nn.Module):
    """ema ← decay·ema + (1 − decay)·θ after every G step; batch-norm statistics are copied, not averaged."""

    def __init__(self, module: nn.Module, decay: float):
        super().__init__()
        self.decay = decay
        self.module = copy.deepcopy(module).requires_grad_(False)

    @torch.no_grad()
    def update(self, module: nn.Module, decay: float | None = None) -> None:
        """One step of the average at ``decay`` (None: the decay it was built with)."""
        decay = self.decay if decay is None else decay
        ema_params = list(self.module.parameters())
        torch._foreach_lerp_(ema_params, [p.detach() for p in module.parameters()], 1.0 - decay)
        copy_buffers(self.module, module)


def copy_buffers(average: nn.Module, module: nn.Module) -> None:
    """``module``'s buffers (batch-norm statistics, StyleGAN2's w̄) into ``average``'s, in one foreach launch."""
    mine = list(average.buffers())
    if mine:
        torch._foreach_copy_(mine, list(module.buffers()))


def half_life_beta(images_per_step: float, ema_kimg: float, images_seen: float, rampup: float | None) -> float:
    """β = 0.5^(B / max(h, 1e-8)), h = ema_kimg·1000, or min(ema_kimg·1000, images_seen·rampup) with a ramp-up
    (module docstring)."""
    half_life = ema_kimg * 1000
    if rampup is not None:
        half_life = min(half_life, images_seen * rampup)
    return 0.5 ** (images_per_step / max(half_life, 1e-8))


class GeneratorEMA(Trick):
    name = "ema"
    ema: Annotated[float, fraction(), "the decay of an exponential moving average of G's weights, which draws "
                                      "every sample (e.g. 0.999)"] = 0.0
    ema_kimg: Annotated[float, at_least(0.0), "instead of ema: the average's half-life in thousands of images "
                                              "(StyleGAN2-ADA: 10; its CIFAR-10: 500); 0 = use ema"] = 0.0
    ema_rampup: Annotated[float | None, fraction(low_open=True, high_open=False),
                          "with ema_kimg: the half-life is at most this share of the images seen (−ADA's "
                          "CIFAR-10: 0.05); null = no ramp-up"] = None
    order = 60  # after historical averaging's update of G's average

    @property
    def on(self) -> bool:
        return bool(self.ema or self.ema_kimg)

    @property
    def switch(self) -> str:
        """The setting that turned the average on, for refusals."""
        return "ema_kimg" if self.ema_kimg and not self.ema else "ema"

    @property
    def caps(self) -> TrickCaps:
        if not self.ema_kimg:
            return TrickCaps()
        return TrickCaps(capture_blocker="tricks.ema_kimg: β is computed on the host at every G update")

    def attach(self, system) -> None:
        system.generator_ema = EMA(system.generator, self.ema)  # GAN.sampler draws from it

    def beta(self, system) -> float:
        """This G update's β: ``ema``, or from the half-life (``ema_kimg`` read now) and the images so far."""
        if not self.ema_kimg:
            return self.ema
        step = batch_size(system) * Ranks.current().world
        return half_life_beta(step, self.ema_kimg, system.iteration * step, self.ema_rampup)

    def after_g_step(self, system) -> None:
        system.generator_ema.update(system.generator, self.beta(system))
