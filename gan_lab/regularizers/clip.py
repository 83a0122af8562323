"""Weight clipping (Arjovsky 2017): after every critic update, clamp every D parameter to [−c, c]."""

from typing import Annotated

import torch
from torch import nn

from gan_lab.checks import above
from gan_lab.regularizers.base import Regularizer


class WeightClip(Regularizer):
    name = "clip"

    def __init__(self, clip_value: Annotated[float, above(0.0), "c: every D weight is clamped to [−c, c] after each "
                                                                "D update"] = 0.01):
        self.clip_value = clip_value

    @torch.no_grad()
    def after_d_step(self, discriminator: nn.Module) -> None:
        c = self.clip_value
        params = [p for p in discriminator.parameters()]
        torch._foreach_clamp_min_(params, -c)
        torch._foreach_clamp_max_(params, c)
