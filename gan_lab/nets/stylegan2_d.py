"""StyleGAN2's discriminator, residual or −ADA's CIFAR-10 "orig" (Karras et al. 2020, "Analyzing and Improving the
Image Quality of StyleGAN", config E/F; −ADA's PyTorch settings, and its class conditioning).
gan_lab/nets/stylegan2.py sizes and builds it; gan_lab/nets/stylegan_ops.py holds the layers.

D at side R = 2^r: a FromRGB 1×1 conv (lrelu) at R, then one block per resolution R, R/2, …, 8, each halving:
    resnet (the default, StyleGAN2's config E/F):   x ← √½·skip(x) + √½·conv1(conv0(x))
    orig (−ADA's CIFAR-10 D, no residual skip):     x ← conv1(conv0(x))
conv0 3×3 (lrelu), conv1 3×3 with FIR 2× downsampling (lrelu), skip a 1×1 conv without bias after the FIR 2×
downsampling; the √½ keeps the sum's variance. Channels at side r: min(channel_base // r, channel_max). Then
the epilogue at 4×4: minibatch stddev (below) → 3×3 conv (lrelu) → FullyConnected (C·16 → C, lrelu): the
features φ(x) (N, C) → FullyConnected (C → 1): the logit.

Minibatch stddev (Karras 2018; group size G = min(``mbstd_group``, N), F = ``mbstd_channels``): split the batch
into groups of G samples and the channels into F groups; for each, the standard deviation of every feature
over the G samples (√(var + 1e-8)), averaged over the channel group and the pixels: F extra constant channels
per sample. A batch that G does not divide uses G = gcd(N, G) (the reference refuses it).

Conditional (−ADA): the labels go through a mapping network (FullyConnected embedding of onehot(y), second-moment
normalisation, 8 lrelu layers at learning-rate multiplier 0.01, as the reference's default depth) to
cmap (N, cmap_dim), cmap_dim = C₄; the last FullyConnected outputs cmap_dim values o, and
    logit = ⟨o, cmap⟩ / √cmap_dim.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from gan_lab.nets.stylegan2_g import MappingNetwork
from gan_lab.nets.stylegan_ops import Conv2dLayer, FullyConnected

D_MAPPING_LAYERS = 8  # the reference's MappingNetwork default: its D never sets the depth (G's is `map`)


class MinibatchStd(nn.Module):
    """(N, C, H, W) → (N, C + F, H, W): F channels holding the groups' mean standard deviation (module docstring)."""

    def __init__(self, group_size: int, num_channels: int = 1):
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        g = math.gcd(n, min(self.group_size, n))  # a Python int: shapes are known at trace time
        f = self.num_channels
        # in float32, as the reference: in half precision the 1e-8 rounds away and a zero variance gives sqrt's
        # infinite gradient
        y = x.float().reshape(g, -1, f, c // f, h, w)  # sample i sits in group i mod (N/G), as the reference
        y = (y - y.mean(dim=0)).square().mean(dim=0)  # (N/G, F, C/F, H, W): variance over the group
        y = (y + 1e-8).sqrt().mean(dim=[2, 3, 4])  # (N/G, F)
        y = y.reshape(-1, f, 1, 1).repeat(g, 1, h, w)  # (N, F, H, W)
        return torch.cat([x, y.to(x.dtype)], dim=1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}"


ARCHITECTURES = ("resnet", "orig")  # D's blocks with or without the residual skip (model.d_architecture)


class DiscriminatorBlock(nn.Module):
    """[FromRGB →] √½·skip(x) + √½·conv1(conv0(x)) (``resnet``) or conv1(conv0(x)) (``orig``), halving the side
    (``in_channels`` 0: the first block)."""

    def __init__(self, in_channels: int, tmp_channels: int, out_channels: int, img_channels: int,
                 conv_clamp: float | None = None, architecture: str = "resnet"):
        super().__init__()
        if architecture not in ARCHITECTURES:
            raise ValueError(f"architecture={architecture!r}: one of {', '.join(ARCHITECTURES)}")
        self.in_channels, self.architecture = in_channels, architecture
        if in_channels == 0:
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, 1, activation="lrelu", conv_clamp=conv_clamp)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, 3, activation="lrelu", conv_clamp=conv_clamp)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, 3, activation="lrelu", down=2, conv_clamp=conv_clamp)
        if architecture == "resnet":
            self.skip = Conv2dLayer(tmp_channels, out_channels, 1, bias=False, down=2)

    def forward(self, x: Tensor) -> Tensor:
        if self.in_channels == 0:
            x = self.fromrgb(x)
        if self.architecture == "orig":
            return self.conv1(self.conv0(x))
        y = self.skip(x, gain=math.sqrt(0.5))
        return y + self.conv1(self.conv0(x), gain=math.sqrt(0.5))


class DiscriminatorEpilogue(nn.Module):
    """4×4 features → [minibatch stddev] → conv 3×3 → FC (C·16 → C) = φ(x); ``out``: FC (C → 1 or cmap_dim)."""

    def __init__(self, in_channels: int, cmap_dim: int, mbstd_group: int, mbstd_channels: int,
                 conv_clamp: float | None = None, resolution: int = 4):
        super().__init__()
        self.mbstd = MinibatchStd(mbstd_group, mbstd_channels) if mbstd_channels > 0 else None
        self.conv = Conv2dLayer(in_channels + mbstd_channels, in_channels, 3, activation="lrelu",
                                conv_clamp=conv_clamp)
        self.fc = FullyConnected(in_channels * resolution**2, in_channels, activation="lrelu")
        self.out = FullyConnected(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def features(self, x: Tensor) -> Tensor:
        if self.mbstd is not None:
            x = self.mbstd(x)
        return self.fc(self.conv(x).flatten(1))


class StyleGAN2Discriminator(nn.Module):
    """D(x) or D(x, y) → logits (N,); ``features(x)`` → φ(x) (N, C₄), ``from_features(φ, y)`` → logits,
    ``judge(x, y)`` → (logits, None)."""

    def __init__(self, resolution: int, img_channels: int, channel_base: int, channel_max: int, mbstd_group: int,
                 mbstd_channels: int, conv_clamp: float | None, n_classes: int = 0, architecture: str = "resnet"):
        super().__init__()
        self.resolution, self.img_channels, self.n_classes = resolution, img_channels, n_classes
        self.block_resolutions = [2**i for i in range(resolution.bit_length() - 1, 2, -1)]
        channels = {r: min(channel_base // r, channel_max) for r in [*self.block_resolutions, 4]}
        for r in self.block_resolutions:
            setattr(self, f"b{r}", DiscriminatorBlock(channels[r] if r < resolution else 0, channels[r],
                                                      channels[r // 2], img_channels, conv_clamp, architecture))
        self.cmap_dim = channels[4] if n_classes > 0 else 0
        if n_classes > 0:
            self.mapping = MappingNetwork(0, n_classes, self.cmap_dim, num_ws=None, num_layers=D_MAPPING_LAYERS,
                                          w_avg_beta=None)
        self.b4 = DiscriminatorEpilogue(channels[4], self.cmap_dim, mbstd_group, mbstd_channels, conv_clamp)

    def features(self, x: Tensor) -> Tensor:
        if x.shape[1:] != (self.img_channels, self.resolution, self.resolution):
            raise ValueError(f"StyleGAN2 D reads ({self.img_channels}, {self.resolution}, {self.resolution}) "
                             f"images, got {tuple(x.shape[1:])}")
        for r in self.block_resolutions:
            x = getattr(self, f"b{r}")(x)
        return self.b4.features(x)  # (N, C₄)

    def from_features(self, features: Tensor, y: Tensor | None = None) -> Tensor:
        out = self.b4.out(features)
        if self.n_classes == 0:
            return out[:, 0]
        if y is None:
            raise ValueError(f"a class-conditional StyleGAN2 D ({self.n_classes} classes) needs labels: D(x, y)")
        cmap = self.mapping(None, y)  # (N, cmap_dim)
        return (out * cmap).sum(dim=1) / math.sqrt(self.cmap_dim)

    def judge(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, None]:
        return self.from_features(self.features(x), y), None

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.from_features(self.features(x), y)
