"""The regularizer interface: hooks around D's update, each a no-op by default, and the capabilities the
build checks instead of names (docs/science.md, "Gradient penalties and Lipschitz constraints")."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
from torch import nn

# A batch as it was before the step's d_input draws, and the map with those draws fixed that made what D judged
# of it (DiffAugment, instance noise, packing): (x, T) with D's input T(x).
Source = tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]
# The real and the fake batch's class labels in a class-conditional run (model.conditional): D judges x given y.
Labels = tuple[torch.Tensor, torch.Tensor]


def given(discriminator: nn.Module, labels: Labels | None, side: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """D as a function of its input alone: x ↦ D(x, y) with y the real (``side`` 0) or the fake (1) batch's
    labels held fixed (a penalty differentiates with respect to the images only); D itself when unconditional."""
    if labels is None:
        return discriminator
    y = labels[side]
    return lambda x: discriminator(x, y)


class Regularizer:
    """``wrap`` D once at build time, ``attach`` state to the system (kept in checkpoints), add ``penalty``
    to D's loss, ``after_d_step`` each D update; ``check`` refuses data it cannot act on."""

    name: ClassVar[str] = "none"
    # Normalisation D gets when model.d_norm=auto: per-sample penalties forbid batch norm.
    preferred_d_norm: ClassVar[str] = "batch"
    forbids_batch_norm: ClassVar[bool] = False
    # The penalty is on ∇ₓV per sample (a double backward): meaningless through batch-mixing layers, and
    # beyond what an unrolled copy of D models.
    needs_input_gradients: ClassVar[bool] = False
    # Keeps state across D updates about one D (LeCam's anchors): the systems that judge with many Ds (a
    # LAPGAN level each, MIX+GAN's members) refuse it.
    needs_one_critic: ClassVar[bool] = False

    def capture_blocker(self) -> str | None:
        """Why a D update with this regularizer cannot be captured as a CUDA graph, or None."""
        return None

    def check(self, spec) -> None:
        """Refuse data this regularizer cannot act on (a ConfigError naming both options)."""

    def attach(self, system: nn.Module) -> None:
        """Register state on the system (buffers land in its checkpoints and move with it)."""

    def wrap(self, discriminator: nn.Module) -> nn.Module:
        return discriminator

    def penalty(self, discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor, d_step: int,
                real_logits: torch.Tensor | None = None, fake_logits: torch.Tensor | None = None,
                sources: tuple[Source, Source] | None = None, labels: Labels | None = None) -> torch.Tensor | None:
        """Extra term for D's loss at D update number ``d_step`` (0-based), or None. ``real``/``fake``:
        what D judged; ``real_logits``/``fake_logits``: its outputs on them, when the step has them;
        ``sources``: the real and the fake :data:`Source` (``real == T_real(x_real)``), when the step has them
        (None: D judged the batches as they are, T the identity); ``labels``: their classes in a
        class-conditional run (:func:`given`)."""
        return None

    def after_d_step(self, discriminator: nn.Module) -> None:
        pass

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v}' for k, v in vars(self).items())})"


def input_gradients(discriminator: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                    view: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """∇ₓ V(x) per sample, (N, numel), kept in the graph so a penalty on it trains D. With ``view`` = T,
    ∇ₓ V(T(x)): one row per output of D, i.e. per sample, or per pack of m consecutive samples under
    ``tricks.pack`` (x ↦ T(x) then regroups them).

    Computed in fp32 outside autocast: the double backward overflows in fp16 (docs/design.md, "torch.compile").
    """
    with torch.autocast(device_type=x.device.type, enabled=False):
        x = x.detach().float().requires_grad_(True)
        out = discriminator(x if view is None else view(x))
        (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    return grad.reshape(out.shape[0], -1)
