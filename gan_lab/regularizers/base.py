"""The regularizer interface: three hooks around D's update, each a no-op by default."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn


class Regularizer:
    """``wrap`` D once at build time, add ``penalty`` to D's loss, ``after_d_step`` each D update."""

    name: ClassVar[str] = "none"
    # Normalisation D gets when model.d_norm=auto: per-sample penalties forbid batch norm.
    preferred_d_norm: ClassVar[str] = "batch"
    forbids_batch_norm: ClassVar[bool] = False
    # The penalty is on ∇ₓV per sample (a double backward): meaningless through batch-mixing layers, and
    # beyond what an unrolled copy of D models.
    needs_input_gradients: ClassVar[bool] = False

    def wrap(self, discriminator: nn.Module) -> nn.Module:
        return discriminator

    def penalty(self, discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                d_step: int) -> torch.Tensor | None:
        """Extra term for D's loss at D update number ``d_step`` (0-based), or None."""
        return None

    def after_d_step(self, discriminator: nn.Module) -> None:
        pass

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v}' for k, v in vars(self).items())})"


def input_gradients(discriminator: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """∇ₓ V(x) per sample, (N, numel), kept in the graph so a penalty on it trains D.

    Computed in fp32 outside autocast: the double backward overflows in fp16 (docs/design.md, "torch.compile").
    """
    with torch.autocast(device_type=x.device.type, enabled=False):
        x = x.detach().float().requires_grad_(True)
        out = discriminator(x)
        (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    return grad.flatten(1)
