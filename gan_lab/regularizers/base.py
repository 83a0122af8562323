"""The regularizer interface: hooks around D's update, each a no-op by default, and the capabilities the
rulebook reads instead of names (docs/science.md, "Gradient penalties and Lipschitz constraints")."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from gan_lab.capabilities import RegularizerCaps

Critic = Callable[[torch.Tensor], torch.Tensor]  # x ↦ D's logits, labels (if any) held fixed
# A batch as it was before the step's d_input draws, and the map with those draws fixed that made what D judged
# of it (DiffAugment, instance noise, packing): (x, T) with D's input T(x).
Source = tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]


@dataclass
class Judged:
    """What one D update judged, as a penalty needs it. ``real``/``fake``: D's inputs (after the step's draws);
    ``real_logits``/``fake_logits``: its outputs on them (None where the step has none); ``real_source``/
    ``fake_source``: the batches before the draws with the map that made D's input (``real == T(x)``);
    ``d_step``: the D update's number (0-based); ``critic_real``/``critic_fake``: D as a function of its input
    alone, given the real or the fake batch's labels in a class-conditional run (a penalty differentiates with
    respect to the samples only)."""

    real: torch.Tensor
    fake: torch.Tensor
    real_logits: torch.Tensor | None
    fake_logits: torch.Tensor | None
    real_source: Source
    fake_source: Source
    d_step: int
    critic_real: Critic
    critic_fake: Critic

    @classmethod
    def of(cls, critic: Critic, real: torch.Tensor, fake: torch.Tensor, d_step: int = 0,
           real_logits: torch.Tensor | None = None, fake_logits: torch.Tensor | None = None) -> Judged:
        """What a D update judged when D saw the batches as they are (no draws: T the identity), unconditional."""
        same = lambda x: x  # noqa: E731
        return cls(real, fake, real_logits, fake_logits, (real, same), (fake, same), d_step, critic, critic)

    def source(self, fake: bool) -> Source:
        return self.fake_source if fake else self.real_source

    def critic(self, fake: bool) -> Critic:
        return self.critic_fake if fake else self.critic_real


class Regularizer:
    """``wrap`` D once at build time, ``attach`` state to the system (kept in checkpoints), add ``penalty`` to D's
    loss, ``after_d_step`` each D update. What it needs of the rest of the run is ``caps``."""

    name: ClassVar[str] = "none"
    caps: ClassVar[RegularizerCaps] = RegularizerCaps()

    def attach(self, system: nn.Module) -> None:
        """Register state on the system (buffers land in its checkpoints and move with it)."""

    def wrap(self, discriminator: nn.Module) -> nn.Module:
        return discriminator

    def layers(self, discriminator: nn.Module) -> list[str]:
        """The weights of D that ``wrap`` acts on, as ``module.weight`` names (a regularizer whose caps say
        ``wraps_layers``; the rulebook refuses one that would find none)."""
        return []

    def penalty(self, judged: Judged) -> torch.Tensor | None:
        """Extra term for D's loss, or None."""
        return None

    def after_d_step(self, discriminator: nn.Module) -> None:
        pass

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v}' for k, v in vars(self).items())})"


def input_gradients(discriminator: Critic, x: torch.Tensor,
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
