"""MIX+GAN mixtures (Arora et al. 2017; Zhang lecture notes, docs/references.md): T networks with softmax
weights over learned logits."""

from __future__ import annotations

import torch
from torch import nn


class Mixture(nn.Module):
    """``members`` (T networks of one player) and ``logits`` (T,) whose softmax is the mixture weight."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.logits = nn.Parameter(torch.zeros(len(members)))  # uniform at the start

    @property
    def weights(self) -> torch.Tensor:
        return torch.softmax(self.logits, dim=0)

    def entropy(self) -> torch.Tensor:
        w = self.weights
        return -(w * torch.log(w.clamp_min(1e-12))).sum()


class GeneratorMixture(Mixture):
    def forward(self, z: torch.Tensor, generator: torch.Generator | None = None,
                y: torch.Tensor | None = None) -> torch.Tensor:
        """A draw from the mixture: each sample's member chosen with probability w_i (given its label y in a
        class-conditional run)."""
        choice = torch.multinomial(self.weights.detach().cpu(), z.shape[0], replacement=True, generator=generator)
        choice = choice.to(z.device)
        out = None
        for i, member in enumerate(self.members):
            picked = (choice == i).nonzero().squeeze(1)
            if picked.numel() == 0:
                continue
            part = member(z[picked]) if y is None else member(z[picked], y[picked])
            if out is None:
                out = part.new_empty(z.shape[0], *part.shape[1:])
            out[picked] = part
        return out


class DiscriminatorMixture(Mixture):
    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The weighted mean of the members' logits (for inspection; training uses every pair)."""
        outs = [member(x) if y is None else member(x, y) for member in self.members]
        return torch.stack(outs).mul(self.weights[:, None]).sum(0)
