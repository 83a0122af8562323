"""DCGAN (Radford 2016; DATS6202 lecture notes, docs/references.md), sized by arithmetic for any square side
b·2ⁿ (b ≥ 4, n ≥ 1).

G: project z to b×b, then n stride-2 transposed convs (BN + ReLU, tanh out). D mirrors it with
stride-2 convs (LeakyReLU 0.2, no norm on the input layer) and a b×b conv head. No pooling, no
hidden fully connected layers. 28 px: 7→14→28; 32 px: 4→8→16→32; 64 px: 4→…→64.
"""

from __future__ import annotations

from typing import Annotated

import torch
from torch import nn

from gan_lab.data.base import DataSpec
from gan_lab.errors import ConfigError
from gan_lab.nets.layers import DNorm, Width, ZDim, dcgan_init, halve, norm_layer, not_square


def plan(spec: DataSpec) -> tuple[int, int]:
    """(base side b, number of 2× stages n) for the data's image side (data :func:`fits` accepts)."""
    return halve(spec.shape[1])


def fits(spec: DataSpec, **_) -> ConfigError | None:
    """The refusal of data DCGAN cannot be sized for (not square images, or a side that is not b·2ⁿ with b ≥ 4,
    n ≥ 1), or None."""
    refusal = not_square(spec, "dcgan", "DCGAN")
    if refusal is None and plan(spec)[1] == 0:
        refusal = ConfigError("model", "dcgan", "images whose side is b·2ⁿ with b ≥ 4, n ≥ 1 (8, 28, 32, 48, 64, …)",
                              f"dataset={spec.name} has side {spec.shape[1]}")
    return refusal


def _widths(width: int, max_width: int, n: int) -> list[int]:
    """Channels per stage, finest first: width, 2·width, … capped at max_width."""
    return [min(width * 2**i, max_width) for i in range(n)]


class DCGANGenerator(nn.Module):
    def __init__(self, z_dim: int, spec: DataSpec, width: int, max_width: int):
        super().__init__()
        base, n = plan(spec)
        widths = _widths(width, max_width, n)[::-1]  # coarse to fine
        layers: list[nn.Module] = [nn.ConvTranspose2d(z_dim, widths[0], base, 1, 0, bias=False),
                                   nn.BatchNorm2d(widths[0]), nn.ReLU(True)]
        for a, b in zip(widths, widths[1:]):
            layers += [nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(widths[-1], spec.shape[0], 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z[:, :, None, None])  # (N, z_dim) -> (N, C, H, W)


class DCGANDiscriminator(nn.Module):
    def __init__(self, spec: DataSpec, width: int, max_width: int, norm: str):
        super().__init__()
        base, n = plan(spec)
        widths = _widths(width, max_width, n)
        bias = norm != "batch"
        layers: list[nn.Module] = [nn.Conv2d(spec.shape[0], widths[0], 4, 2, 1), nn.LeakyReLU(0.2, True)]
        for a, b in zip(widths, widths[1:]):
            layers += [nn.Conv2d(a, b, 4, 2, 1, bias=bias), norm_layer(norm, b, spatial=True),
                       nn.LeakyReLU(0.2, True)]
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv2d(widths[-1], 1, base, 1, 0)
        self.map_shape = (widths[-1], base, base)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).flatten(1)

    def from_features(self, features: torch.Tensor) -> torch.Tensor:
        """The head on :meth:`features` (the b×b conv is a linear map of the flattened map)."""
        return self.head(features.view(features.shape[0], *self.map_shape)).flatten()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x)).flatten()  # (N,)


def build(spec: DataSpec, z_dim: ZDim = 100,
          width: Annotated[Width, "channels at the finest resolution; doubles per coarser stage"] = 64,
          max_width: Annotated[Width, "cap on the channels of the coarsest stage"] = 512,
          d_norm: DNorm = "batch") -> tuple[nn.Module, nn.Module]:
    """(G, D) for data :func:`fits` accepts (``d_norm`` resolved: batch, layer or none)."""
    g = DCGANGenerator(z_dim, spec, width, max_width)
    d = DCGANDiscriminator(spec, width, max_width, d_norm)
    dcgan_init(g)
    dcgan_init(d)
    return g, d
