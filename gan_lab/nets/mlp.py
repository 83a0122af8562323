"""Fully connected generator and discriminator: the toy-data workhorse, also runs on images."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from gan_lab.data.base import DataSpec
from gan_lab.errors import ConfigError, check_int
from gan_lab.nets.layers import norm_layer


class MLPGenerator(nn.Module):
    """z (N, z_dim) -> sample (N, *shape); tanh output for images, linear for points."""

    def __init__(self, z_dim: int, shape: Sequence[int], hidden: Sequence[int], image: bool,
                 norm: str = "none"):
        super().__init__()
        self.shape = tuple(shape)
        dims = [z_dim, *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(dims, dims[1:]):
            layers += [nn.Linear(a, b), norm_layer(norm, b, spatial=False, key="model.g_norm"), nn.ReLU()]
        numel = 1
        for s in self.shape:
            numel *= s
        layers.append(nn.Linear(dims[-1], numel))
        if image:
            layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(z.shape[0], *self.shape)


class MLPDiscriminator(nn.Module):
    """sample (N, *shape) -> logit (N,), LeakyReLU(0.2) hidden layers."""

    def __init__(self, shape: Sequence[int], hidden: Sequence[int], norm: str):
        super().__init__()
        numel = 1
        for s in shape:
            numel *= s
        dims = [numel, *hidden]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(dims, dims[1:])):
            layers.append(nn.Linear(a, b))
            if i > 0:  # no normalisation on the input layer (DCGAN guideline)
                layers.append(norm_layer(norm, b, spatial=False))
            layers.append(nn.LeakyReLU(0.2))
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(dims[-1], 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).squeeze(1)


def build(spec: DataSpec, z_dim: int = 64, hidden: Sequence[int] = (256, 256, 256),
          d_norm: str = "none", g_norm: str = "none") -> tuple[nn.Module, nn.Module]:
    check_int("model.z_dim", z_dim, 1)
    hidden = list(hidden)
    if not hidden or any(not isinstance(h, int) or h < 1 for h in hidden):
        raise ConfigError("model.hidden", hidden, "a non-empty list of positive layer widths")
    return (MLPGenerator(z_dim, spec.shape, hidden, spec.is_image, g_norm),
            MLPDiscriminator(spec.shape, hidden, d_norm))
