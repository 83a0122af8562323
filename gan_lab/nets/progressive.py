"""Progressive growing of GANs (Karras 2018), sized for any square side b·2ⁿ (4 ≤ b ≤ 7, n ≥ 0).

Training runs in phases, one per resolution: 28 px grows 7→14→28, 32 px grows 4→8→16→32. Phase 0
works at b×b; each later phase adds a block to G (nearest 2× upsample + two 3×3 convs) and its
mirror to D (two 3×3 convs + 2× average pool). The new block fades in: with weight α it is blended
with the previous phase's path (residual blend), α rising 0→1 as ``phase_at`` schedules it.

G: pixelwise feature normalisation after every conv, LeakyReLU 0.2, a ``to_rgb`` 1×1 conv per
resolution, tanh on the blended output. D: a ``from_rgb`` 1×1 conv per resolution, LeakyReLU 0.2,
no batch norm; its last block at b×b starts with a minibatch-stddev feature map.

Not from the paper: weights start from He init but carry no equalised learning rate.
The training loop calls ``set_phase(phase, alpha)`` on both players and feeds D real images shrunk
with ``downsample_to(x, D.resolution)``, then faded in as G's output is (``fade_reals``); G's samples
already come at that resolution.
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from torch import nn

from gan_lab.data.base import DataSpec
from gan_lab.errors import ConfigError
from gan_lab.nets.layers import Width, ZDim, halve, norm_layer, not_square


def plan(spec: DataSpec) -> list[int]:
    """Resolutions of the phases, coarsest first: 4 -> [4], 28 -> [7, 14, 28], 32 -> [4, 8, 16, 32] (data
    :func:`fits` accepts)."""
    base, n = halve(spec.shape[1])
    return [base * 2**i for i in range(n + 1)]


def fits(spec: DataSpec, d_norm: str = "none", **_) -> ConfigError | None:
    """The refusal of a D with batch norm (``d_norm`` resolved: auto has become the regularizer's preference)
    or of data progressive growing cannot be sized for (not square images, or a side that is not b·2ⁿ with
    4 ≤ b ≤ 7, n ≥ 0), or None."""
    if d_norm == "batch":
        return ConfigError("model.d_norm", d_norm, "none or layer with model=progressive",
                           "Progressive growing uses no batch norm (minibatch stddev already looks across the batch). "
                           "Set model.d_norm=none: d_norm=auto resolves to batch with the default regularizer.")
    refusal = not_square(spec, "progressive", "progressive growing")
    if refusal is None and not 4 <= halve(spec.shape[1])[0] <= 7:
        refusal = ConfigError("model", "progressive", "images whose side is b·2ⁿ with 4 ≤ b ≤ 7, n ≥ 0 "
                              "(4, 8, 16, 28, 32, 48, 64, …)", f"dataset={spec.name} has side {spec.shape[1]}")
    return refusal


def _widths(width: int, max_width: int, n: int) -> list[int]:
    """Channels per resolution, coarsest first: …, 2·width, width (capped at max_width)."""
    return [min(width * 2**i, max_width) for i in range(n)][::-1]


def phase_at(iteration: int, phase_iterations: int, n_phases: int,
             fade_fraction: float = 0.5) -> tuple[int, float]:
    """(phase, alpha) at G iteration ``iteration`` (0-based).

    Each phase lasts ``phase_iterations``; the last one lasts forever. In a phase > 0, alpha rises
    linearly 0→1 over its first ``fade_fraction`` and then stays 1. Phase 0 has alpha 1. The settings are
    ``model.system``'s (gan_lab/systems/progressive.py), checked with the config.
    """
    phase = min(iteration // phase_iterations, n_phases - 1)
    fade = fade_fraction * phase_iterations
    if phase == 0 or fade == 0:
        return phase, 1.0
    return phase, min(1.0, (iteration - phase * phase_iterations) / fade)


def downsample_to(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """Average-pool images (N, C, S, S) to (N, C, r, r), S = r·2ᵏ, by k successive 2× poolings.

    Halving step by step (rather than one S/r pooling) makes the result bit-identical to D's own
    2× pooling of the next finer phase's input, so a phase change is exact in floating point too.
    """
    side = x.shape[-1]
    ratio = side // resolution
    if resolution < 1 or side % resolution or ratio & (ratio - 1):
        raise ValueError(f"cannot halve side {side} down to {resolution}")
    while x.shape[-1] > resolution:
        x = F.avg_pool2d(x, 2)  # (N, C, s, s) -> (N, C, s/2, s/2)
    return x


def _blend(alpha: float, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """α·new + (1−α)·old, written so that α = 0 gives ``old`` bit for bit."""
    return alpha * new + (1.0 - alpha) * old


def fade_reals(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """Real images (N, C, r, r) as D sees them while a block fades in: α·x + (1−α)·up(down(x)), blended as
    G's output is (``_blend``, nearest 2× upsampling of the previous phase's image), so D never compares
    sharp reals with blended fakes (ProGAN's reference code blends its reals the same way). α = 1: x.

    G blends before its tanh, reals can only be blended as images: the two blends agree exactly at
    α = 0 and α = 1."""
    if alpha >= 1.0:
        return x
    return _blend(alpha, x, F.interpolate(F.avg_pool2d(x, 2), scale_factor=2, mode="nearest"))


class PixelNorm(nn.Module):
    """Pixelwise feature normalisation: x / sqrt(mean_c x² + ε) at every pixel of (N, C, H, W)."""

    def __init__(self, eps: float = 1e-8):
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + self.eps)


class MinibatchStdDev(nn.Module):
    """Append one feature map holding the batch's average standard deviation (Karras 2018, §3).

    The batch (N, C, H, W) is split into M = N/G groups of G samples (sample n in group n mod M,
    as in the paper's code). For each group:
        σ[c, h, w] = sqrt(mean_g (x[g, c, h, w] − mean_g' x[g', c, h, w])² + ε)
        s = mean over (c, h, w) of σ
    and s is appended as a constant H×W map to each sample of the group -> (N, C + 1, H, W).
    G is the largest divisor of N that is ≤ group_size; identical samples give s = √ε ≈ 0.
    """

    def __init__(self, group_size: int = 4, eps: float = 1e-8):
        super().__init__()
        self.group_size = group_size
        self.eps = eps

    def group(self, n: int) -> int:
        g = min(self.group_size, n)
        while n % g:
            g -= 1
        return g

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = self.group(n)
        y = x.reshape(g, n // g, c, h, w)  # y[i, m] = x[i·M + m]
        std = (y.var(dim=0, correction=0) + self.eps).sqrt()  # (M, C, H, W)
        s = std.mean(dim=(1, 2, 3)).repeat(g)  # (N,): sample n gets group n mod M
        return torch.cat([x, s[:, None, None, None].expand(n, 1, h, w)], dim=1)


def _conv3(a: int, b: int) -> nn.Conv2d:
    return nn.Conv2d(a, b, 3, 1, 1)


def _he_init(module: nn.Module) -> None:
    """He init for LeakyReLU(0.2) on every conv / linear weight, zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, a=0.2, nonlinearity="leaky_relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class _Phased(nn.Module):
    """Phase bookkeeping shared by G and D; (phase, alpha) travel in the state dict."""

    resolutions: list[int]
    phase: int = 0
    alpha: float = 1.0

    @property
    def n_phases(self) -> int:
        return len(self.resolutions)

    @property
    def resolution(self) -> int:
        return self.resolutions[self.phase]

    def set_phase(self, phase: int, alpha: float = 1.0) -> None:
        if isinstance(phase, bool) or not isinstance(phase, int) or not 0 <= phase < self.n_phases:
            raise ValueError(f"phase must be an integer in [0, {self.n_phases - 1}], got {phase!r}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], got {alpha!r}")
        self.phase, self.alpha = phase, float(alpha)

    def fading(self) -> bool:
        """Whether the previous phase's path still contributes (phase > 0 and alpha < 1)."""
        return self.phase > 0 and self.alpha < 1.0

    def get_extra_state(self) -> dict:
        return {"phase": self.phase, "alpha": self.alpha}

    def set_extra_state(self, state: dict) -> None:
        self.set_phase(state["phase"], state["alpha"])


class ProgressiveGenerator(_Phased):
    """z (N, z_dim) -> image (N, C, r, r) at the current phase's resolution r, in [-1, 1]."""

    def __init__(self, z_dim: int, spec: DataSpec, width: int, max_width: int):
        super().__init__()
        self.resolutions = plan(spec)
        self.base = self.resolutions[0]
        widths = _widths(width, max_width, len(self.resolutions))
        act = lambda: nn.LeakyReLU(0.2)
        first = nn.Sequential(  # (N, z_dim) -> (N, w0, b, b)
            PixelNorm(), nn.Linear(z_dim, widths[0] * self.base**2), act(),
            nn.Unflatten(1, (widths[0], self.base, self.base)), PixelNorm(),
            _conv3(widths[0], widths[0]), act(), PixelNorm())
        blocks = [first] + [nn.Sequential(  # (N, w_{p-1}, r/2, r/2) -> (N, w_p, r, r)
            nn.Upsample(scale_factor=2, mode="nearest"),
            _conv3(a, b), act(), PixelNorm(), _conv3(b, b), act(), PixelNorm())
            for a, b in zip(widths, widths[1:])]
        self.blocks = nn.ModuleList(blocks)
        self.to_rgb = nn.ModuleList(nn.Conv2d(w, spec.shape[0], 1) for w in widths)
        _he_init(self)
        for m in self.to_rgb:  # linear output layers: unit gain
            nn.init.kaiming_normal_(m.weight, nonlinearity="linear")

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = z
        for block in self.blocks[:self.phase]:
            h = block(h)  # (N, w_{p-1}, r/2, r/2) after the blocks of phases < p
        out = self.to_rgb[self.phase](self.blocks[self.phase](h))  # (N, C, r, r)
        if self.fading():
            old = F.interpolate(self.to_rgb[self.phase - 1](h), scale_factor=2, mode="nearest")
            out = _blend(self.alpha, out, old)
        return torch.tanh(out)


class ProgressiveDiscriminator(_Phased):
    """image (N, C, r, r) at the current phase's resolution r -> logits (N,).

    ``blocks[0]`` is the last block at b×b (minibatch stddev, 3×3 conv, b×b conv -> features);
    ``blocks[p]`` for p ≥ 1 takes (N, w_p, r_p, r_p) to (N, w_{p-1}, r_p/2, r_p/2).
    """

    def __init__(self, spec: DataSpec, width: int, max_width: int, mbstd_group: int = 4,
                 norm: str = "none"):
        super().__init__()
        self.resolutions = plan(spec)
        base = self.resolutions[0]
        widths = _widths(width, max_width, len(self.resolutions))
        act = lambda: nn.LeakyReLU(0.2)
        nrm = lambda c: norm_layer(norm, c, spatial=True)
        last = nn.Sequential(  # (N, w0, b, b) -> (N, w0)
            MinibatchStdDev(mbstd_group), _conv3(widths[0] + 1, widths[0]), nrm(widths[0]), act(),
            nn.Conv2d(widths[0], widths[0], base), nrm(widths[0]), act(), nn.Flatten())
        blocks = [last] + [nn.Sequential(  # (N, w_p, r, r) -> (N, w_{p-1}, r/2, r/2)
            _conv3(b, b), nrm(b), act(), _conv3(b, a), nrm(a), act(), nn.AvgPool2d(2))
            for a, b in zip(widths, widths[1:])]
        self.blocks = nn.ModuleList(blocks)
        self.from_rgb = nn.ModuleList(nn.Sequential(nn.Conv2d(spec.shape[0], w, 1), act())
                                      for w in widths)
        self.head = nn.Linear(widths[0], 1)
        _he_init(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.resolution or x.shape[-2] != self.resolution:
            raise ValueError(f"D at phase {self.phase} takes {self.resolution}×{self.resolution} images, "
                             f"got {tuple(x.shape)}; shrink them with downsample_to(x, D.resolution)")
        p = self.phase
        h = self.from_rgb[p](x)  # (N, w_p, r, r)
        if p > 0:
            h = self.blocks[p](h)  # (N, w_{p-1}, r/2, r/2)
        if self.fading():
            h = _blend(self.alpha, h, self.from_rgb[p - 1](F.avg_pool2d(x, 2)))
        for q in range(p - 1, 0, -1):
            h = self.blocks[q](h)  # down to (N, w0, b, b)
        return self.blocks[0](h)  # (N, w0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).squeeze(1)  # (N,)


def build(spec: DataSpec, z_dim: ZDim = 128,
          width: Annotated[Width, "channels at the finest resolution; doubles per coarser stage"] = 32,
          max_width: Annotated[Width, "cap on the channels of the coarsest stage"] = 256,
          d_norm: Annotated[Literal["none", "layer", "auto"], "D's normalisation: none | layer (the paper uses no "
                                                              "batch norm) | auto (the regularizer's preference)"]
          = "none",
          mbstd_group: Annotated[Width, "minibatch-stddev group size"] = 4) -> tuple[nn.Module, nn.Module]:
    """(G, D) for data :func:`fits` accepts, both at phase 0 with alpha 1. D carries no batch norm (the paper
    uses none)."""
    d_norm = "none" if d_norm == "auto" else d_norm
    g = ProgressiveGenerator(z_dim, spec, width, max_width)
    d = ProgressiveDiscriminator(spec, width, max_width, mbstd_group, d_norm)
    return g, d
