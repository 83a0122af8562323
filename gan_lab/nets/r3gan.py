"""R3GAN's networks (Huang, Gokaslan, Kuleshov & Tompkin 2024, "The GAN is dead; long live the GAN! A Modern GAN
Baseline", config E): a ResNet of inverted-bottleneck blocks with grouped convolutions, no normalisation, leaky
ReLU 0.2 with biases, fix-up initialisation and [1, 3, 3, 1] ("bilinear") resampling, sized for square images of
side 2^(S+1), S ≥ 2 stages (8, 16, 32, 64, … px). The layers are in gan_lab/nets/r3gan_blocks.py.

Stage i (0-based) works at 4·2ⁱ px with wᵢ channels; ``widths`` lists wᵢ coarsest first (a shorter list repeats its
last entry, a longer one is cut: the authors' FFHQ-64 list is their FFHQ-256 list's first five). D mirrors G.

G: z (N, z_dim) [joined with E(onehot(y)), conditional] → GenerativeBasis (w₀, 4, 4) → ``blocks`` residual blocks
  → for each later stage: [1×1 conv w_{i−1} → wᵢ where they differ] → 2× up → ``blocks`` residual blocks
  → 1×1 conv to the data's C channels. No output non-linearity (the authors' G has none).
D: 1×1 conv C → w_{S−1} → for each stage, finest first: ``blocks`` residual blocks → 2× down → [1×1 conv where the
  widths differ]; at 4×4: blocks → DiscriminativeBasis (depthwise 4×4) → features (N, w₀) → Linear (no bias) → (N,).
Residual block: x + W₃ φ(W₂ φ(W₁ x)), W₁ 1×1 c → e·c (e = ``expansion``), W₂ 3×3 in e·c / ``group_size`` groups,
  W₃ 1×1 e·c → c; φ(h) = leaky_relu(h + b, 0.2). Convs and linears have no bias (the activations carry them).
Init (MSR): N(0, (gain/√fan_in)²); W₁, W₂ gain √(2/1.04) · L^(−1/4) (L = S·``blocks``, the network's blocks), W₃
  zero, so each block starts as the identity; every other layer gain 1; G's basis N(0, 1).
Classes (n_classes = K > 0), as the authors' code: G joins z with E_G(onehot(y)), E_G a K → z_dim linear (no bias,
  gain 1); D's final linear gives w₀ features instead of 1, and logit = ⟨Linear(φ(x)), E_D(onehot(y))⟩ with E_D a
  K → w₀ linear (no bias, gain 1/√w₀): a projection discriminator without the unconditional term.

Parameters (measured; G / D):

  config                                                                side, C    G            D
  defaults (widths [64], group_size 16, blocks 1, expansion 2, z 64)    8, 1       75,328       71,296
                                                                        16, 3      110,528      106,496
                                                                        32, 3      145,600      141,568
  the authors' CIFAR-10 (widths [768]·4, group_size 16, blocks 2,       32, 3      20,732,160   20,683,776
    expansion 2, z 64), unconditional
  the same, class-conditional on 10 classes                             32, 3      20,781,952   21,280,512

The authors' presets (their train.py): CIFAR-10 widths [768, 768, 768, 768], 96 groups per stage, 2 blocks,
expansion 2, z 64; FFHQ-64 [768, 768, 768, 768, 384] with 96, …, 48 groups (group_size 16); ImageNet-32 widths
[1536]·4 with 96 groups (group_size 32). Their CIFAR-10 run is class-conditional. Checked once against their
Networks.py (its pure-PyTorch paths, at a small config with changing widths): the same parameter shapes and counts,
and, given the same weights, the same G and D outputs to float32 rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from torch import nn

from gan_lab.checks import at_least
from gan_lab.data.base import DataSpec
from gan_lab.errors import ConfigError
from gan_lab.nets.layers import Widths, ZDim, not_power_of_two
from gan_lab.nets.r3gan_blocks import (
    DiscriminativeBasis,
    DownTransition,
    GenerativeBasis,
    ResidualBlock,
    UpTransition,
    conv,
    msr_init,
)
from gan_lab.settings import Int0, Int1

NATIVE_CONDITIONING = ("projection",)  # class conditioning the networks do themselves (n_classes > 0)


def stages(spec: DataSpec) -> int:
    """S: the stages from 4×4 to the data's side 2^(S+1) (data :func:`fits` accepts)."""
    return spec.shape[1].bit_length() - 2


def stage_widths(widths: Sequence[int], n: int) -> list[int]:
    """The n stages' widths, coarsest first: ``widths`` cut to n, or extended with its last entry."""
    widths = list(widths)
    return (widths + [widths[-1]] * n)[:n]


def fits(spec: DataSpec, widths: Sequence[int] = (64,), group_size: int = 16, expansion: int = 2,
         d_norm: str = "none", **_) -> ConfigError | None:
    """The refusal of a normalisation in D (R3GAN has none), of data the networks cannot be sized for (not
    square images, or a side that is not a power of two ≥ 8), or of a ``group_size`` that does not divide every
    stage's expanded width; or None."""
    if d_norm not in ("none", "auto"):
        return ConfigError("model.d_norm", d_norm, "none (or auto) with model=r3gan",
                           "R3GAN's networks use no normalisation. Set model.d_norm=none.")
    refusal = not_power_of_two(spec, "r3gan", "R3GAN's ResNet")
    if refusal is not None:
        return refusal
    wide = [w * expansion for w in stage_widths(widths, stages(spec))]
    if any(w % group_size for w in wide):
        return ConfigError("model.group_size", group_size, f"a divisor of every stage's expanded width {wide} "
                           f"(expansion × widths)", f"dataset={spec.name}: {stages(spec)} stages")
    return None


def _onehot(y: torch.Tensor | None, n_classes: int, dtype: torch.dtype, who: str) -> torch.Tensor:
    if y is None:
        raise ValueError(f"the class-conditional {who} needs labels y")
    return F.one_hot(y, n_classes).to(dtype)


def _unconditional(y: torch.Tensor | None, who: str) -> None:
    if y is not None:
        raise ValueError(f"the unconditional {who} was given labels (build it with n_classes > 0)")


class R3Generator(nn.Module):
    """G(z) or, with classes, G(z, y): (N, z_dim) [, (N,)] -> (N, C, H, W)."""

    def __init__(self, spec: DataSpec, z_dim: int, widths: list[int], group_size: int, blocks: int,
                 expansion: int, n_classes: int = 0):
        super().__init__()
        self.z_dim, self.n_classes = z_dim, n_classes
        total = len(widths) * blocks

        def residuals(w: int) -> list[nn.Module]:
            return [ResidualBlock(w, w * expansion // group_size, expansion, total) for _ in range(blocks)]

        self.embed = msr_init(nn.Linear(n_classes, z_dim, bias=False)) if n_classes else None
        first = GenerativeBasis(z_dim * (2 if n_classes else 1), widths[0])
        self.stages = nn.ModuleList([nn.Sequential(first, *residuals(widths[0]))] + [
            nn.Sequential(UpTransition(a, b), *residuals(b)) for a, b in zip(widths, widths[1:])])
        self.out = conv(widths[-1], spec.shape[0])

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is None:
            _unconditional(y, "generator")
        else:
            z = torch.cat([z, self.embed(_onehot(y, self.n_classes, z.dtype, "generator"))], dim=1)
        for stage in self.stages:
            z = stage(z)
        return self.out(z)


class R3Discriminator(nn.Module):
    """D(x) or, with classes, D(x, y) -> logits (N,); ``features(x)`` -> (N, w₀), the 4×4 basis's output."""

    def __init__(self, spec: DataSpec, widths: list[int], group_size: int, blocks: int, expansion: int,
                 n_classes: int = 0):
        super().__init__()
        self.n_classes = n_classes
        total = len(widths) * blocks
        finest_first = widths[::-1]

        def residuals(w: int) -> list[nn.Module]:
            return [ResidualBlock(w, w * expansion // group_size, expansion, total) for _ in range(blocks)]

        self.extract = conv(spec.shape[0], finest_first[0])
        self.stages = nn.ModuleList([nn.Sequential(*residuals(a), DownTransition(a, b))
                                     for a, b in zip(finest_first, finest_first[1:])]
                                    + [nn.Sequential(*residuals(widths[0]), DiscriminativeBasis(widths[0]))])
        self.head = msr_init(nn.Linear(widths[0], widths[0] if n_classes else 1, bias=False))
        self.embed = (msr_init(nn.Linear(n_classes, widths[0], bias=False), widths[0] ** -0.5) if n_classes
                      else None)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = self.extract(x)
        for stage in self.stages:
            h = stage(h)
        return h  # (N, w₀)

    def from_features(self, features: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.head(features)
        if self.embed is None:
            _unconditional(y, "discriminator")
            return h.flatten()
        return (h * self.embed(_onehot(y, self.n_classes, h.dtype, "discriminator"))).sum(dim=1)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.from_features(self.features(x), y)  # (N,)

    def judge(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, None]:
        """(logits (N,), None): the conditional discriminators' interface (no auxiliary classifier)."""
        return self(x, y), None


def build(spec: DataSpec, z_dim: ZDim = 64,
          widths: Annotated[Widths, "channels of each stage, 4x4 first (a shorter list repeats its last entry, "
                                    "a longer one is cut); D mirrors G"] = (64,),
          group_size: Annotated[int, at_least(1), "channels per group of the grouped 3x3 convs (groups = "
                                                  "expansion x width / group_size)"] = 16,
          blocks: Annotated[Int1, "residual blocks per stage, in G and in D"] = 1,
          expansion: Annotated[Int1, "inverted bottleneck: the 1x1 conv widens a block by this factor"] = 2,
          d_norm: Annotated[Literal["none", "auto"], "none: R3GAN has no normalisation (auto: accepted when the "
                                                     "regularizer's preference is none)"] = "auto",
          n_classes: Annotated[Int0, "classes the networks condition on themselves (0: unconditional)"] = 0,
          ) -> tuple[nn.Module, nn.Module]:
    """(G, D) for data :func:`fits` accepts; see the module docstring. Defaults: a small CPU-sized pair."""
    refusal = fits(spec, widths=widths, group_size=group_size, expansion=expansion, d_norm=d_norm)
    if refusal is not None:
        raise refusal
    ws = stage_widths(widths, stages(spec))
    return (R3Generator(spec, z_dim, ws, group_size, blocks, expansion, n_classes),
            R3Discriminator(spec, ws, group_size, blocks, expansion, n_classes))
