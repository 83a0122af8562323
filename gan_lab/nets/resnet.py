"""SN-GAN ResNets (Miyato 2018, appendix tables; the same blocks as Gulrajani 2017's WGAN-GP ResNet),
sized by arithmetic for any square side b·2ⁿ (4 ≤ b ≤ 7, n ≥ 1).

Sizing rule (``plan``): b is the side halved while it stays even and ≥ 8; n is the number of halvings
(28 → 7·2², 32 → 4·2³, 48 → 6·2³, 64 → 4·2⁴, 8 → 4·2¹). n = 0 (sides 4…7, odd sides) or b > 7
(36 → 9·2², 100 → 25·2²) is refused by :func:`fits`, naming ``model``.

G: z → Linear → (c₀, b, b) → n up blocks → BN → ReLU → conv3×3 to C channels → tanh.
  Up block: BN → ReLU → nearest 2× → conv3×3 → BN → ReLU → conv3×3; shortcut nearest 2× → conv1×1.
  Channels, coarsest first: cᵢ = min(g_width · 2ⁿ⁻ⁱ, g_max_width), i = 0…n (i = n is the last block's
  output), i.e. ``g_width`` at full resolution, doubling per coarser stage up to the cap.
D: an optimized first block (conv3×3 → ReLU → conv3×3 → avgpool2; shortcut avgpool2 → conv1×1), then
  down blocks (ReLU → conv3×3 → ReLU → conv3×3 → avgpool2; shortcut conv1×1 → avgpool2), then
  ``d_plain`` blocks without pooling (shortcut conv1×1 only where the channels change, else identity),
  then ReLU → global SUM pooling (``features``) → Linear(·, 1) (``head``).
  ``d_down`` pooling blocks (the optimized one counts), default max(n − 1, 1): D's maps end at 2b×2b,
  as the paper's CIFAR D (32 → 16 → 8). Block k (0-based) has min(d_width · 2ᵏ, d_max_width) channels.
  ``d_norm`` (batch | layer | none; SN-GAN: none) goes before each ReLU inside the blocks.

Resulting configurations (defaults: g_width = g_max_width = 256, d_width = d_max_width = 128, d_plain 2):

  side  b  n  G channels (b×b → full)   D blocks (side after each)                        params G / D
  8     4  1  256, 256                  opt 4, plain 4, plain 4                           1.78M / 0.74M (C=1)
  28    7  2  256, 256, 256             opt 14, plain 14, plain 14                        4.11M / 0.74M (C=1)
  32    4  3  256, 256, 256, 256        opt 16, down 8, plain 8, plain 8 (= the paper)    4.28M / 1.05M
  48    6  3  256 ×4                    opt 24, down 12, plain 12, plain 12               4.94M / 1.05M
  64    4  4  256 ×5                    opt 32, down 16, down 8, plain 8, plain 8         5.52M / 1.37M

The paper's wider nets are overrides of the same rule:
  STL-10 48 px (the paper's STL-10 table): g_width=64 g_max_width=512 (G 512, 256, 128, 64) and
    d_width=64 d_max_width=1024 d_down=4 d_plain=1 (D 64, 128, 256, 512 pooling 48 → 3, then 1024):
    4.88M / 19.5M.
  64 px (mimicry's SNGAN-64): g_width=64 g_max_width=1024 (G 1024, …, 64), d_width=64
    d_max_width=1024 d_down=5 d_plain=0 (D 64, …, 1024, 64 → 2): 12.2M / 19.5M.

Initialisation as the reference code (sngan_projection, mimicry): Xavier uniform with gain √2 for the
two 3×3 convs of every residual path, gain 1 for the 1×1 shortcuts, G's input Linear and output
conv and D's Linear head; zero biases; norm scales 1. Spectral norm is not applied here:
``regularizer=sn`` wraps every Conv2d/Linear of D. No in-place ops, so D's double backward (WGAN-GP,
R1) is safe.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from torch import nn

from gan_lab.data.base import DataSpec
from gan_lab.errors import ConfigError
from gan_lab.nets.layers import DNorm, Width, ZDim, halve, norm_layer, not_square
from gan_lab.settings import Int0, Int1


def plan(spec: DataSpec) -> tuple[int, int]:
    """(base side b, number of 2× up blocks n) for the data's image side (data :func:`fits` accepts)."""
    return halve(spec.shape[1])


def default_d_down(n: int) -> int:
    """D's pooling blocks when ``d_down`` is null: max(n − 1, 1), D's maps ending at 2b×2b."""
    return max(n - 1, 1)


def fits(spec: DataSpec, d_down: int | None = None, **_) -> ConfigError | None:
    """The refusal of data the ResNet cannot be sized for (not square images, a side that is not b·2ⁿ with
    4 ≤ b ≤ 7, n ≥ 1, or ``d_down`` 2× poolings that do not divide the side), or None."""
    refusal = not_square(spec, "resnet", "the SN-GAN ResNet")
    if refusal is not None:
        return refusal
    side = spec.shape[1]
    base, n = plan(spec)
    if n == 0 or base > 7:
        return ConfigError("model", "resnet", "images whose side is b·2ⁿ with 4 ≤ b ≤ 7, n ≥ 1 (8, 28, 32, 48, 64, …)",
                           f"dataset={spec.name} has side {side}")
    d_down = default_d_down(n) if d_down is None else d_down
    if side % 2**d_down:
        return ConfigError("model.d_down", d_down, f"a number of 2× poolings that divides the side {side}",
                           f"dataset={spec.name}: {side} px cannot be halved {d_down} times evenly "
                           f"(null picks max(n − 1, 1) = {default_d_down(n)}).")
    return None


def g_widths(g_width: int, g_max_width: int, n: int) -> list[int]:
    """G's channels, coarsest (b×b) first: n + 1 entries, g_width at full resolution."""
    return [min(g_width * 2 ** (n - i), g_max_width) for i in range(n + 1)]


def d_widths(d_width: int, d_max_width: int, blocks: int) -> list[int]:
    """D's channels per block, input side first."""
    return [min(d_width * 2**k, d_max_width) for k in range(blocks)]


def _init(module: nn.Module, gain: float = 1.0) -> nn.Module:
    nn.init.xavier_uniform_(module.weight, gain)
    if module.bias is not None:
        nn.init.zeros_(module.bias)
    return module


def _conv(a: int, b: int, k: int, gain: float) -> nn.Conv2d:
    return _init(nn.Conv2d(a, b, k, 1, k // 2), gain)


def _up(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")


class UpBlock(nn.Module):
    """BN → ReLU → 2× → conv3×3 → BN → ReLU → conv3×3, plus 2× → conv1×1 (``norm``: BN, or layer norm, or none)."""

    def __init__(self, a: int, b: int, norm: str = "batch"):
        super().__init__()
        self.bn1, self.conv1 = norm_layer(norm, a, spatial=True), _conv(a, b, 3, math.sqrt(2))
        self.bn2, self.conv2 = norm_layer(norm, b, spatial=True), _conv(b, b, 3, math.sqrt(2))
        self.shortcut = _conv(a, b, 1, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(_up(F.relu(self.bn1(x))))
        h = self.conv2(F.relu(self.bn2(h)))
        return h + self.shortcut(_up(x))


class DBlock(nn.Module):
    """[norm] → ReLU → conv3×3 → [norm] → ReLU → conv3×3 → [avgpool2]; shortcut conv1×1 → [avgpool2]
    where the channels change or it pools, else identity. ``optimized``: the first block, on the image
    itself: conv3×3 → [norm] → ReLU → conv3×3 → avgpool2; shortcut avgpool2 → conv1×1."""

    def __init__(self, a: int, b: int, down: bool, norm: str, optimized: bool = False):
        super().__init__()
        self.down, self.optimized = down, optimized
        self.norm1 = nn.Identity() if optimized else norm_layer(norm, a, spatial=True)
        self.conv1 = _conv(a, b, 3, math.sqrt(2))
        self.norm2 = norm_layer(norm, b, spatial=True)
        self.conv2 = _conv(b, b, 3, math.sqrt(2))
        self.shortcut = _conv(a, b, 1, 1.0) if (optimized or down or a != b) else None

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, 2) if self.down else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x if self.optimized else F.relu(self.norm1(x)))
        h = self._pool(self.conv2(F.relu(self.norm2(h))))
        if self.shortcut is None:
            return h + x
        if self.optimized:
            return h + self.shortcut(self._pool(x))
        return h + self._pool(self.shortcut(x))


class ResNetGenerator(nn.Module):
    def __init__(self, z_dim: int, spec: DataSpec, g_width: int, g_max_width: int, g_norm: str = "batch"):
        super().__init__()
        self.z_dim = z_dim
        self.base, n = plan(spec)
        widths = g_widths(g_width, g_max_width, n)
        self.linear = _init(nn.Linear(z_dim, widths[0] * self.base**2))
        self.blocks = nn.Sequential(*[UpBlock(a, b, g_norm) for a, b in zip(widths, widths[1:])])
        self.bn = norm_layer(g_norm, widths[-1], spatial=True)
        self.out = _conv(widths[-1], spec.shape[0], 3, 1.0)

    unconditional_norms = ("bn",)  # under projection the blocks' norms take the class; this one does not (b7)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.linear(z).view(z.shape[0], -1, self.base, self.base)
        h = self.blocks(h)
        return torch.tanh(self.out(F.relu(self.bn(h))))  # (N, C, H, W) in [-1, 1]


class ResNetDiscriminator(nn.Module):
    def __init__(self, spec: DataSpec, d_width: int, d_max_width: int, d_down: int, d_plain: int,
                 norm: str):
        super().__init__()
        widths = d_widths(d_width, d_max_width, d_down + d_plain)
        ins = [spec.shape[0], *widths[:-1]]
        self.blocks = nn.Sequential(*[DBlock(a, b, down=k < d_down, norm=norm, optimized=k == 0)
                                      for k, (a, b) in enumerate(zip(ins, widths))])
        self.head = _init(nn.Linear(widths[-1], 1))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.blocks(x)).sum(dim=(2, 3))  # global sum pooling, (N, F)

    def from_features(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features).flatten()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).flatten()  # (N,)


def build(spec: DataSpec, z_dim: ZDim = 128,
          g_width: Annotated[Width, "G channels at full resolution; doubles per coarser stage up to "
                                    "g_max_width"] = 256,
          g_max_width: Annotated[Width, "cap on G's channels"] = 256,
          d_width: Annotated[Width, "D channels of its first block; doubles per block up to d_max_width"] = 128,
          d_max_width: Annotated[Width, "cap on D's channels"] = 128,
          d_down: Annotated[Int1 | None, "D's 2× average-pooling blocks; null: max(n − 1, 1) (CIFAR: "
                                         "32 → 16 → 8)"] = None,
          d_plain: Annotated[Int0, "D blocks after them, without pooling"] = 2,
          d_norm: DNorm = "none",
          g_norm: Annotated[Literal["batch", "layer", "none"], "G's normalisation in its blocks and before its "
                                                              "output (SN-GAN: batch; R3GAN: none)"] = "batch",
          ) -> tuple[nn.Module, nn.Module]:
    """SN-GAN's CIFAR-10 ResNet by default, for data :func:`fits` accepts; see the module docstring for the
    sizing rule.

    ``d_down``: D's pooling blocks (None: max(n − 1, 1)); ``d_plain``: D's blocks after them.
    ``d_norm=auto`` (only when called directly; the lab resolves it) means none, as in the paper.
    """
    d_norm = "none" if d_norm == "auto" else d_norm
    _, n = plan(spec)
    if d_down is None:
        d_down = default_d_down(n)
    return (ResNetGenerator(z_dim, spec, g_width, g_max_width, g_norm),
            ResNetDiscriminator(spec, d_width, d_max_width, d_down, d_plain, d_norm))
