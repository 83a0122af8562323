"""LAPGAN (Denton 2015; LAMBDA lecture notes, docs/references.md): one generator and one discriminator per
level of a Laplacian pyramid.

Pyramid of an image x (N, C, S, S) with K levels above the base:

    I_0 = x,   I_{k+1} = down(I_k),   h_k = I_k − up(I_{k+1})   (k = 0 … K−1),   I_K the coarsest.

``down`` is 2× average pooling and ``up`` 2× *nearest* upsampling. Nearest makes ``down(up(y)) = y``
exactly, so every residual has zero mean over each 2×2 block (``down(h_k) = 0``): h_k carries only the
detail the coarser level lacks. x = up(…up(I_K)…) + Σ up^k(h_k) reconstructs x (exactly on dyadic data).

Networks (level k = 0 is the finest, K the coarsest):
- G_K(z_K) → I_K: a fully connected net (tanh out), as the paper's coarsest CIFAR/STL level.
- G_k(z_k, up(I_{k+1})) → h_k for k < K: z_k goes through a linear layer to one S_k×S_k noise map,
  concatenated to the condition; three 3×3 convs, linear output (residuals are signed).
- D_K(I_K): fully connected; D_k(h_k, up(I_{k+1})): the pair concatenated on channels, a 3×3 conv then
  stride-2 convs down to a ≥ 4 px side and a conv head. Each returns logits (N,).

The generator's noise z (N, z_dim) is split into per-level chunks, so sampling is a pure function of z:
``z = [z_K (z_dim − K·level_z_dim) | z_{K−1} (level_z_dim) | … | z_0 (level_z_dim)]``.
Sampling runs coarse to fine: I_k = clamp(up(I_{k+1}) + G_k(z_k, up(I_{k+1})), −1, 1); the clamp keeps
every level's condition in the range its G_k and D_k were trained on (real images live in [−1, 1]).
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from torch import nn

from gan_lab.data.base import DataSpec
from gan_lab.errors import ConfigError
from gan_lab.nets.layers import Width, dcgan_init, norm_layer, not_square
from gan_lab.settings import Int1

MAX_LEVELS = 3
MIN_SIDE = 4  # the coarsest image's side is at least this


# ---------------------------------------------------------------- the pyramid
def down(x: torch.Tensor) -> torch.Tensor:
    """(N, C, S, S) -> (N, C, S/2, S/2) by 2×2 average pooling."""
    return F.avg_pool2d(x, 2)


def up(x: torch.Tensor) -> torch.Tensor:
    """(N, C, s, s) -> (N, C, 2s, 2s) by nearest-neighbour upsampling (``down(up(y)) == y``)."""
    return F.interpolate(x, scale_factor=2, mode="nearest")


def gaussian_pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """[I_0 = x, I_1, …, I_K]: K successive 2× average poolings."""
    images = [x]
    for _ in range(levels):
        images.append(down(images[-1]))
    return images


def laplacian_pyramid(x: torch.Tensor, levels: int) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
    """(residuals [h_0 … h_{K−1}], conditions [up(I_1) … up(I_K)], coarsest I_K).

    ``conditions[k]`` is what G_k and D_k are conditioned on; h_k = I_k − conditions[k].
    """
    images = gaussian_pyramid(x, levels)
    conditions = [up(images[k + 1]) for k in range(levels)]
    residuals = [images[k] - conditions[k] for k in range(levels)]
    return residuals, conditions, images[-1]


def reconstruct(residuals: list[torch.Tensor], coarse: torch.Tensor) -> torch.Tensor:
    """I_0 from (h_0 … h_{K−1}, I_K): I_k = up(I_{k+1}) + h_k from the coarsest level down."""
    image = coarse
    for h in reversed(residuals):
        image = up(image) + h
    return image


def chain_residuals(images: list[torch.Tensor]) -> list[torch.Tensor]:
    """The residuals a sampling chain [I_K, …, I_0] added at each finer level: [h_{K−1}, …, h_0]."""
    return [fine - up(coarse) for coarse, fine in zip(images, images[1:])]


def default_levels(side: int) -> int:
    """As many halvings as keep the coarsest side an integer ≥ 4, at most 3 (28 px → 2, 32 px → 3)."""
    levels = 0
    while levels < MAX_LEVELS and side % 2 == 0 and side // 2 >= MIN_SIDE:
        side, levels = side // 2, levels + 1
    return levels


def plan(spec: DataSpec, levels: int | None) -> tuple[int, int]:
    """(image side S, number of levels K) for data :func:`fits` accepts (``levels`` None: the default)."""
    side = spec.shape[1]
    return side, default_levels(side) if levels is None else levels


def fits(spec: DataSpec, levels: int | None = None, z_dim: int = 100, level_z_dim: int = 16,
         **_) -> ConfigError | None:
    """The refusal of data LAPGAN cannot build a pyramid of (not square images, a side that does not halve to
    ≥ 4 px, ``levels`` halvings that do not leave an integer side ≥ 4) or of a ``z_dim`` that leaves the
    coarsest level no noise (``z_dim`` ≤ levels·level_z_dim), or None."""
    refusal = not_square(spec, "lapgan", "LAPGAN")
    if refusal is not None:
        return refusal
    side = spec.shape[1]
    if levels is None:
        levels = default_levels(side)
        if levels == 0:
            return ConfigError("model", "lapgan", f"images whose side halves at least once to ≥ {MIN_SIDE} px "
                               "(8, 16, 28, 32, 64, …)", f"dataset={spec.name} has side {side}")
    elif side % 2**levels or side // 2**levels < MIN_SIDE:
        return ConfigError("model.levels", levels, f"a number of 2× halvings of side {side} that leaves an "
                           f"integer side ≥ {MIN_SIDE} (null picks {default_levels(side) or 'none'})",
                           f"dataset={spec.name} has side {side}")
    if z_dim - levels * level_z_dim < 1:
        return ConfigError("model.z_dim", z_dim, f"more than levels·level_z_dim = {levels}·{level_z_dim}",
                           "z is split into per-level chunks: the finer levels take level_z_dim dims each "
                           "and the coarsest level the rest.")
    return None


# ---------------------------------------------------------------- level networks
class CoarseGenerator(nn.Module):
    """G_K: z_K -> I_K (N, C, s, s), fully connected, tanh out."""

    def __init__(self, z_dim: int, shape: tuple[int, int, int], hidden: int, norm: str):
        super().__init__()
        self.shape = shape
        out = shape[0] * shape[1] * shape[2]
        layers: list[nn.Module] = []
        for a, b in ((z_dim, hidden), (hidden, hidden)):
            layers += [nn.Linear(a, b), norm_layer(norm, b, spatial=False), nn.ReLU(True)]
        layers += [nn.Linear(hidden, out), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, *self.shape)


class ResidualGenerator(nn.Module):
    """G_k: (z_k, condition up(I_{k+1})) -> h_k (N, C, s, s), linear output."""

    def __init__(self, z_dim: int, channels: int, side: int, width: int, norm: str):
        super().__init__()
        self.side = side
        self.noise = nn.Linear(z_dim, side * side)  # z_k -> one noise map the size of the image
        layers: list[nn.Module] = []
        for a in (channels + 1, width):
            layers += [nn.Conv2d(a, width, 3, 1, 1), norm_layer(norm, width, spatial=True), nn.ReLU(True)]
        layers += [nn.Conv2d(width, channels, 3, 1, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        noise = self.noise(z).view(-1, 1, self.side, self.side)
        return self.net(torch.cat([condition, noise], dim=1))


class CoarseDiscriminator(nn.Module):
    """D_K: I_K -> logits (N,), fully connected, LeakyReLU 0.2, no norm on the input layer."""

    def __init__(self, shape: tuple[int, int, int], hidden: int, norm: str):
        super().__init__()
        numel = shape[0] * shape[1] * shape[2]
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(numel, hidden), nn.LeakyReLU(0.2, True),
            nn.Linear(hidden, hidden), norm_layer(norm, hidden, spatial=False), nn.LeakyReLU(0.2, True),
            nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()


class ResidualDiscriminator(nn.Module):
    """D_k: (h_k, condition) -> logits (N,); the pair is concatenated on channels."""

    def __init__(self, channels: int, side: int, width: int, norm: str):
        super().__init__()
        bias = norm != "batch"
        layers: list[nn.Module] = [nn.Conv2d(2 * channels, width, 3, 1, 1), nn.LeakyReLU(0.2, True)]
        c = width
        while side % 2 == 0 and side // 2 >= MIN_SIDE:  # stride-2 convs: 28 -> 14 -> 7, 32 -> 16 -> 8 -> 4
            layers += [nn.Conv2d(c, 2 * c, 4, 2, 1, bias=bias), norm_layer(norm, 2 * c, spatial=True),
                       nn.LeakyReLU(0.2, True)]
            c, side = 2 * c, side // 2
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv2d(c, 1, side, 1, 0)

    def forward(self, h: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(torch.cat([h, condition], dim=1))).flatten()


# ---------------------------------------------------------------- the two players
class LaplacianGenerator(nn.Module):
    """Every level's generator. ``forward(z)`` samples the full chain and returns I_0 (N, C, S, S)."""

    def __init__(self, spec: DataSpec, levels: int, z_dim: int, level_z_dim: int, width: int, hidden: int,
                 norm: str):
        super().__init__()
        side = spec.shape[1]
        channels = spec.shape[0]
        self.levels, self.z_dim, self.level_z_dim = levels, z_dim, level_z_dim
        self.coarse_z_dim = z_dim - levels * level_z_dim
        self.sides = [side // 2**k for k in range(levels + 1)]  # S_0 … S_K
        self.coarse = CoarseGenerator(self.coarse_z_dim, (channels, self.sides[-1], self.sides[-1]), hidden, norm)
        # refiners[k] is G_k (k = 0 finest … K−1)
        self.refiners = nn.ModuleList(
            [ResidualGenerator(level_z_dim, channels, self.sides[k], width, norm) for k in range(levels)])

    def split(self, z: torch.Tensor) -> list[torch.Tensor]:
        """Per-level noise [z_0, …, z_K] from z = [z_K | z_{K−1} | … | z_0]."""
        if z.shape[-1] != self.z_dim:
            raise ValueError(f"z has {z.shape[-1]} dims, the generator takes {self.z_dim}")
        coarse, *rest = z.split([self.coarse_z_dim] + [self.level_z_dim] * self.levels, dim=1)
        return [*reversed(rest), coarse]

    def chain(self, z: torch.Tensor) -> list[torch.Tensor]:
        """Every level of one sampling chain, coarse to fine: [I_K (S_K px), …, I_0 (S_0 px)]."""
        zs = self.split(z)
        image = self.coarse(zs[-1])
        images = [image]
        for k in reversed(range(self.levels)):
            condition = up(image)
            image = (condition + self.refiners[k](zs[k], condition)).clamp(-1.0, 1.0)
            images.append(image)
        return images

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.chain(z)[-1]


class LaplacianDiscriminator(nn.Module):
    """Every level's discriminator: ``coarse`` judges I_K, ``residual[k]`` judges (h_k, up(I_{k+1}))."""

    def __init__(self, spec: DataSpec, levels: int, width: int, hidden: int, norm: str):
        super().__init__()
        side, channels = spec.shape[1], spec.shape[0]
        self.levels = levels
        sides = [side // 2**k for k in range(levels + 1)]
        self.coarse = CoarseDiscriminator((channels, sides[-1], sides[-1]), hidden, norm)
        self.residual = nn.ModuleList([ResidualDiscriminator(channels, sides[k], width, norm) for k in range(levels)])

    def level(self, k: int, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (N,) of level k's D: D_K(I_K) for k = K, else D_k(h_k, condition)."""
        if k == self.levels:
            return self.coarse(x)
        return self.residual[k](x, condition)

    def level_networks(self) -> list[nn.Module]:
        """[D_0, …, D_K]."""
        return [*self.residual, self.coarse]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Joint logits (N,) of full images x: the sum of every level's logits on x's own pyramid.

        Training judges one level at a time (:meth:`level`); the sum is what a single-input D means here:
        with optimal level Ds, log p/q of the pyramid = log p_K/q_K(I_K) + Σ_k log p/q(h_k | up(I_{k+1})).
        """
        residuals, conditions, coarse = laplacian_pyramid(x, self.levels)
        logits = self.coarse(coarse)
        for k, (h, c) in enumerate(zip(residuals, conditions)):
            logits = logits + self.residual[k](h, c)
        return logits


def build(spec: DataSpec, z_dim: Annotated[Width, "total noise: level_z_dim per finer level, the rest to the "
                                               "coarsest level"] = 100,
          width: Annotated[Width, "channels of the conv residual nets G_k, D_k (D doubles them per stride-2 "
                                  "conv)"] = 64,
          hidden: Annotated[Width, "units of the coarsest level's fully connected G_K and D_K"] = 512,
          levels: Annotated[Int1 | None, "K halvings above the base; null: as many as keep the coarsest side ≥ 4 "
                                         "(at most 3)"] = None,
          level_z_dim: Annotated[Width, "noise dims of each finer level (a linear map to one noise channel)"] = 16,
          g_norm: Annotated[Literal["batch", "none"], "batch | none in the generators' hidden layers"] = "batch",
          d_norm: Annotated[Literal["none", "layer", "batch", "auto"], "none | layer | batch in the level "
                                                                      "discriminators (auto: the regularizer's "
                                                                      "preference)"] = "none"
          ) -> tuple[nn.Module, nn.Module]:
    """(LaplacianGenerator, LaplacianDiscriminator) sized from data :func:`fits` accepts (``d_norm`` resolved).

    ``z_dim``: total noise dims (the coarsest level gets z_dim − levels·level_z_dim of them);
    ``width``: channels of the conv level nets; ``hidden``: units of the coarsest level's FC nets;
    ``levels``: K (null: as many 2× halvings as keep the coarsest side an integer ≥ 4, at most 3).
    """
    _, levels = plan(spec, levels)
    g = LaplacianGenerator(spec, levels, z_dim, level_z_dim, width, hidden, g_norm)
    d = LaplacianDiscriminator(spec, levels, width, hidden, d_norm)
    dcgan_init(g)
    dcgan_init(d)
    return g, d
