"""Minibatch discrimination (Salimans 2016; EE807 lecture notes, docs/references.md), as a layer and as a
wrapper around any D."""

from __future__ import annotations

import torch
from torch import nn

from gan_lab.data.base import DataSpec


class MinibatchDiscrimination(nn.Module):
    """f (N, A) -> [f, o] (N, A + B): M_i = f_i·T reshaped (B, C); c_b(i, j) = exp(−‖M_{i,b} − M_{j,b}‖₁);
    o(x_i)_b = Σ_j c_b(i, j) (the sum includes j = i, as in the paper)."""

    linear_weights = ("T",)  # f ↦ f·T is a linear map of D: regularizer=sn divides T by σ(T) as it does a layer's W

    def __init__(self, in_features: int, kernels: int, kernel_dim: int):
        super().__init__()
        self.kernels, self.kernel_dim = kernels, kernel_dim
        self.T = nn.Parameter(torch.randn(in_features, kernels * kernel_dim) * 0.05)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        m = (f @ self.T).view(-1, self.kernels, self.kernel_dim)  # (N, B, C)
        l1 = (m.unsqueeze(1) - m.unsqueeze(0)).abs().sum(dim=3)  # (N, N, B)
        o = torch.exp(-l1).sum(dim=1)  # (N, B)
        return torch.cat([f, o], dim=1)


class MinibatchDiscriminator(nn.Module):
    """Wraps a lab discriminator: its features -> minibatch layer -> a new linear head."""

    def __init__(self, inner: nn.Module, spec: DataSpec, kernels: int, kernel_dim: int):
        super().__init__()
        was_training = inner.training
        side = getattr(inner, "resolution", None)  # a progressive D takes its current phase's size
        shape = spec.shape if side is None else (spec.shape[0], side, side)
        with torch.no_grad():
            width = inner.eval().features(torch.zeros(2, *shape)).shape[1]
        inner.train(was_training)
        inner.head = None  # replaced by ours (an unused head would be dead weight in DDP and optimisers)
        self.inner = inner
        self.minibatch = MinibatchDiscrimination(width, kernels, kernel_dim)
        self.head = nn.Linear(width + kernels, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.minibatch(self.inner.features(x))).squeeze(1)
