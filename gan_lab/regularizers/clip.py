"""Weight clipping (Arjovsky 2017): after every critic update, clamp every D parameter to [−c, c]."""

import torch
from torch import nn

from gan_lab.errors import check_range
from gan_lab.regularizers.base import Regularizer


class WeightClip(Regularizer):
    name = "clip"

    def __init__(self, clip_value: float = 0.01):
        self.clip_value = check_range("regularizer.clip_value", clip_value, 0.0, low_open=True)

    @torch.no_grad()
    def after_d_step(self, discriminator: nn.Module) -> None:
        c = self.clip_value
        params = [p for p in discriminator.parameters()]
        torch._foreach_clamp_min_(params, -c)
        torch._foreach_clamp_max_(params, c)
