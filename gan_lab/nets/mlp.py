"""Fully connected generator and discriminator: the toy-data workhorse, also runs on images."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

import torch
from torch import nn

from gan_lab.checks import Validator
from gan_lab.data.base import DataSpec
from gan_lab.errors import ConfigError
from gan_lab.nets.layers import DNorm, Widths, ZDim, norm_layer

# model.init other than torch's defaults: the weights' law; biases start at 0 (batch norm keeps scale 1, shift 0).
_INIT_WEIGHTS = {
    "normal": lambda w: nn.init.normal_(w, 0.0, 0.02),  # Blocks' IsotropicGaussian(0.02) (PacGAN's toy nets)
    "orthogonal": lambda w: nn.init.orthogonal_(w, gain=1.4),  # the Unrolled GAN notebook's tf initializer
}
INITS = ("torch", *_INIT_WEIGHTS)
ACTIVATIONS = ("default", "tanh")  # default: ReLU in G, LeakyReLU(0.2) in D; tanh: both (Unrolled GAN's toy nets)


class LinearMaxout(nn.Module):
    """Maxout (Goodfellow et al. 2013): ``pieces`` affine maps per unit, the unit's output their maximum
    (PacGAN's toy D, after Blocks' LinearMaxout: Linear(a, b·pieces), then max over each unit's pieces)."""

    def __init__(self, a: int, b: int, pieces: int):
        super().__init__()
        self.units, self.pieces = b, pieces
        self.linear = nn.Linear(a, b * pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).view(x.shape[0], self.units, self.pieces).amax(dim=2)


class MLPGenerator(nn.Module):
    """z (N, z_dim) -> sample (N, *shape); tanh output for images, linear for points."""

    def __init__(self, z_dim: int, shape: Sequence[int], hidden: Sequence[int], image: bool,
                 norm: str = "none", activation: str = "default"):
        super().__init__()
        self.shape = tuple(shape)
        dims = [z_dim, *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(dims, dims[1:]):
            layers += [nn.Linear(a, b), norm_layer(norm, b, spatial=False),
                       nn.Tanh() if activation == "tanh" else nn.ReLU()]
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
    """sample (N, *shape) -> logit (N,): LeakyReLU(0.2) hidden layers, or maxout units of ``maxout``
    pieces each (``maxout`` ≥ 2)."""

    def __init__(self, shape: Sequence[int], hidden: Sequence[int], norm: str, maxout: int = 0,
                 activation: str = "default"):
        super().__init__()
        numel = 1
        for s in shape:
            numel *= s
        dims = [numel, *hidden]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(dims, dims[1:])):
            layers.append(LinearMaxout(a, b, maxout) if maxout >= 2 else nn.Linear(a, b))
            if i > 0:  # no normalisation on the input layer (DCGAN guideline)
                layers.append(norm_layer(norm, b, spatial=False))
            if maxout < 2:
                layers.append(nn.Tanh() if activation == "tanh" else nn.LeakyReLU(0.2))
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(dims[-1], 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.flatten(1))

    def from_features(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features).squeeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).squeeze(1)


def maxout_ok(value: int) -> bool:
    """0 (LeakyReLU units) or at least 2 pieces per maxout unit."""
    return value == 0 or value >= 2


def fits(spec: DataSpec, **_) -> ConfigError | None:
    """The MLP flattens any shape, points or images: it refuses none."""
    return None


def build(spec: DataSpec, z_dim: ZDim = 64,
          hidden: Annotated[Widths, "widths of the hidden layers of both G and D"] = (256, 256, 256),
          d_norm: DNorm = "none",
          g_norm: Annotated[Literal["batch", "layer", "none"], "G's normalisation: batch | layer | none (batch "
                                                               "gives tricks.virtual_batchnorm layers to "
                                                               "virtualise)"] = "none",
          d_hidden: Annotated[Widths | None, "D's widths when they differ from G's (null: hidden)"] = None,
          d_maxout: Annotated[int, Validator(maxout_ok, "0 (LeakyReLU units) or at least 2 pieces per unit"),
                              ">= 2: D's hidden units are maxout units of that many pieces (0: LeakyReLU 0.2)"] = 0,
          init: Annotated[Literal[INITS], "torch (PyTorch's defaults) | normal (weights N(0, 0.02), biases 0) | "
                                          "orthogonal (gain 1.4, biases 0)"] = "torch",
          activation: Annotated[Literal[ACTIVATIONS], "default (ReLU in G, LeakyReLU 0.2 in D) | tanh (both)"]
          = "default") -> tuple[nn.Module, nn.Module]:
    """``hidden``: G's widths (and D's unless ``d_hidden``); ``d_maxout`` ≥ 2: D's hidden units are maxout
    units of that many pieces; ``init``: torch's defaults, ``normal`` — weights N(0, 0.02), biases 0
    (PacGAN's toy networks) — or ``orthogonal`` — (semi-)orthogonal weights of gain 1.4, biases 0 (the Unrolled
    GAN reference notebook: tf.orthogonal_initializer(gain=1.4), slim's zero biases); ``activation``:
    ``default`` or ``tanh`` in every hidden layer of both."""
    hidden = list(hidden)
    d_widths = hidden if d_hidden is None else list(d_hidden)
    generator = MLPGenerator(z_dim, spec.shape, hidden, spec.is_image, g_norm, activation)
    discriminator = MLPDiscriminator(spec.shape, d_widths, d_norm, d_maxout, activation)
    if init in _INIT_WEIGHTS:
        for m in [*generator.modules(), *discriminator.modules()]:
            if isinstance(m, nn.Linear):
                _INIT_WEIGHTS[init](m.weight)
                nn.init.zeros_(m.bias)
    return generator, discriminator
