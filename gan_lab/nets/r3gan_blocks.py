"""The layers of R3GAN's networks (Huang, Gokaslan, Kuleshov & Tompkin 2024, "The GAN is dead; long live the GAN!
A Modern GAN Baseline", section 3 and the authors' code): MSR initialisation with fix-up scaling, the biased leaky
ReLU, the interpolative resamplers, the inverted-bottleneck residual block, the transitions between stages and
the two bases at 4×4. gan_lab/nets/r3gan.py assembles them.

Initialisation (``msr_init``): a weight of fan-in n (in_channels/groups · k·k for a conv, in_features for a linear)
is drawn N(0, (gain / √n)²); biases are zero. In a residual block of m = 3 linear layers within a network of L
blocks in all, the first two layers take gain = g_act · L^(−1/(2m−2)) = g_act · L^(−1/4), with
g_act = √(2 / (1 + 0.2²)) the leaky ReLU's gain, and the last layer gain 0: it starts at zero, so every block
starts as the identity (fix-up initialisation, Zhang et al. 2019; the L^(−1/(2m−2)) factor is theirs).

Resampling (``lowpass_kernel``, ``Upsample``, ``Downsample``): the taps [1, 2, 1] convolved with [1, 1] give
[1, 3, 3, 1]; their outer product over its sum is the 4×4 kernel K = [1,3,3,1]ᵀ[1,3,3,1] / 64, applied per channel.
Up: zero-insertion ×2, then K·4 (padding 2 before, 1 after; as a transposed conv, stride 2, padding 1): in 1-D
y[2i] = (x[i−1] + 3x[i]) / 4, y[2i+1] = (3x[i] + x[i+1]) / 4, i.e. bilinear interpolation (half-pixel
centres) away from the border, with zeros beyond it. Down: K, stride 2, padding 1: y[j] = (x[2j−1] + 3x[2j] +
3x[2j+1] + x[2j+2]) / 8, i.e. antialiased bilinear halving (a tent of radius 2 px) away from the border, with zeros
beyond it. This is what the paper calls bilinear resampling; a constant image stays constant away from the border
(up: ¾ of it on the edge rows, 9/16 in the corners; down: ⅞ and 49/64).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LEAK = 0.2
ACTIVATION_GAIN = math.sqrt(2 / (1 + LEAK**2))  # the leaky ReLU's gain, g_act
LINEAR_LAYERS = 3  # m: linear layers in a residual block (1×1 expand, grouped k×k, 1×1 project)
TAPS = (1, 2, 1)  # the resampling filter's taps (the authors' ResamplingFilter)


def msr_init(layer: nn.Conv2d | nn.Linear, gain: float = 1.0) -> nn.Conv2d | nn.Linear:
    """Weights N(0, (gain / √fan_in)²), exactly zero when gain is 0; biases zero."""
    with torch.no_grad():
        if gain == 0:
            layer.weight.zero_()
        else:
            layer.weight.normal_(0.0, gain / math.sqrt(layer.weight[0].numel()))
        if layer.bias is not None:
            layer.bias.zero_()
    return layer


def fixup_gain(total_blocks: int) -> float:
    """The gain of the first m − 1 layers of a residual branch: g_act · L^(−1/(2m−2)), L the network's blocks."""
    return ACTIVATION_GAIN * total_blocks ** (-1 / (2 * LINEAR_LAYERS - 2))


def conv(a: int, b: int, kernel: int = 1, groups: int = 1, gain: float = 1.0) -> nn.Conv2d:
    """A k×k convolution without bias ('same' padding), MSR-initialised."""
    return msr_init(nn.Conv2d(a, b, kernel, 1, (kernel - 1) // 2, groups=groups, bias=False), gain)


class BiasedActivation(nn.Module):
    """leaky_relu(x + b, 0.2) with a learned bias b per channel (zero at the start); no gain in the forward."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return F.leaky_relu(x + self.bias.view(shape), LEAK)


class ResidualBlock(nn.Module):
    """x + W₃ φ(W₂ φ(W₁ x)): W₁ 1×1 (c → e·c), W₂ k×k grouped (e·c → e·c in ``groups`` groups), W₃ 1×1 (e·c → c),
    φ the biased leaky ReLU. W₃ starts at zero, so the block starts as the identity."""

    def __init__(self, channels: int, groups: int, expansion: int, total_blocks: int, kernel: int = 3):
        super().__init__()
        wide, gain = channels * expansion, fixup_gain(total_blocks)
        self.expand = conv(channels, wide, 1, gain=gain)
        self.act1 = BiasedActivation(wide)
        self.grouped = conv(wide, wide, kernel, groups=groups, gain=gain)
        self.act2 = BiasedActivation(wide)
        self.project = conv(wide, channels, 1, gain=0.0)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.act2(self.grouped(self.act1(self.expand(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(x)


def lowpass_kernel(taps: tuple[int, ...] = TAPS) -> torch.Tensor:
    """The 4×4 kernel K = kᵀk / Σ(kᵀk), k = taps * [1, 1] ([1, 2, 1] → [1, 3, 3, 1]); K sums to 1."""
    k = torch.tensor(taps, dtype=torch.float64)
    k = F.conv1d(k.view(1, 1, -1), torch.ones(1, 1, 2, dtype=torch.float64), padding=1).flatten()  # k * [1, 1]
    kernel = torch.outer(k, k)
    return (kernel / kernel.sum()).float()


class _Resampler(nn.Module):
    def __init__(self, taps: tuple[int, ...] = TAPS):
        super().__init__()
        self.register_buffer("kernel", lowpass_kernel(taps), persistent=False)
        self.padding = len(taps) // 2

    def weight(self, x: torch.Tensor, scale: float) -> torch.Tensor:
        """The kernel for every channel of x, as a depthwise conv's weight (C, 1, 4, 4)."""
        k = self.kernel.to(x.dtype) * scale
        return k.expand(x.shape[1], 1, *k.shape)


class Upsample(_Resampler):
    """2× up: zero-insertion, then 4·K per channel (a transposed conv, stride 2)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv_transpose2d(x, self.weight(x, 4.0), stride=2, padding=self.padding, groups=x.shape[1])


class Downsample(_Resampler):
    """2× down: K per channel, stride 2."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight(x, 1.0), stride=2, padding=self.padding, groups=x.shape[1])


class UpTransition(nn.Module):
    """G between stages: 1×1 conv (a → b, only where the widths differ), then 2× up."""

    def __init__(self, a: int, b: int):
        super().__init__()
        self.linear = conv(a, b) if a != b else None
        self.resample = Upsample()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resample(x if self.linear is None else self.linear(x))


class DownTransition(nn.Module):
    """D between stages: 2× down, then 1×1 conv (a → b, only where the widths differ)."""

    def __init__(self, a: int, b: int):
        super().__init__()
        self.resample = Downsample()
        self.linear = conv(a, b) if a != b else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.resample(x)
        return x if self.linear is None else self.linear(x)


class GenerativeBasis(nn.Module):
    """G's 4×4 start: a learned basis B (c, 4, 4), B ~ N(0, 1), scaled per channel by a linear map of z (no bias):
    h[n, c] = B[c] · (W z_n)[c]."""

    def __init__(self, in_features: int, channels: int):
        super().__init__()
        self.basis = nn.Parameter(torch.randn(channels, 4, 4))
        self.linear = msr_init(nn.Linear(in_features, channels, bias=False))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.basis.unsqueeze(0) * self.linear(z)[:, :, None, None]


class DiscriminativeBasis(nn.Module):
    """D's 4×4 end: a depthwise 4×4 conv without bias (one 4×4 filter per channel, MSR gain 1): (N, c, 4, 4) →
    (N, c), the features D's final linear reads."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = msr_init(nn.Conv2d(channels, channels, 4, groups=channels, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).flatten(1)
