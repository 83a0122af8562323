"""StyleGAN2's generator (Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN", config F
with the skip architecture; −ADA's PyTorch settings): the mapping network z → w, and the synthesis network
w → image. gan_lab/nets/stylegan2.py sizes and builds it; gan_lab/nets/stylegan_ops.py holds the layers.

Mapping: z is normalised by its second moment, z/√(mean z² + 1e-8); with classes, onehot(y) goes through a
FullyConnected embedding to w_dim, is normalised the same way and joined to z. Then ``mapping_layers``
FullyConnected layers with lrelu at learning-rate multiplier 0.01. In training mode every call moves
w̄ ← w̄ + (1 − β)(mean_batch w − w̄), β = 0.995. Truncation: w' = w̄ + ψ(w − w̄) (ψ = 1: unchanged; 0: w̄), on
every w or on the first ``cutoff`` ones.

Synthesis at side R = 2^r: one block per resolution 4, 8, …, R. Block 4 starts from a learned constant
(C₄, 4, 4) ~ N(0, 1); every other block upsamples with a modulated 3×3 conv (FIR 2×) and adds a second 3×3
modulated conv. Each synthesis layer: modulated conv with demodulation → + noise·strength (per-pixel N(0, 1),
strength learned, starting at 0) → + bias → lrelu·√2 → clamp. Each block's ToRGB (a modulated 1×1 conv, no
demodulation, styles scaled by 1/√C) adds to the image carried up from the block below, upsampled with the FIR
(skip architecture). w's: one per conv layer, the ToRGB of a block sharing the next block's first w; the last
ToRGB gets its own: num_ws = 2r − 2 (8 at 32 px). The output is linear (no tanh), as the reference.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from gan_lab.nets.stylegan_ops import (
    FullyConnected,
    bias_act,
    fuse_here,
    modulated_conv2d,
    normalize_2nd_moment,
    setup_filter,
    upsample2d,
)

NOISE_MODES = ("random", "const", "none")


def onehot(y: Tensor, n_classes: int) -> Tensor:
    """(N, K) float labels from class indices (N,); float (N, K) labels pass as they are."""
    return y.float() if y.is_floating_point() else F.one_hot(y.long(), n_classes).float()


class MappingNetwork(nn.Module):
    """z (N, z_dim) [and labels y] → w (N, w_dim), or ws (N, num_ws, w_dim) when ``num_ws`` is given (the same w
    broadcast). ``z_dim`` 0: a mapping of the labels alone (−ADA's conditional D); ``w_avg_beta`` None: no w̄."""

    def __init__(self, z_dim: int, n_classes: int, w_dim: int, num_ws: int | None, num_layers: int = 8,
                 lr_multiplier: float = 0.01, w_avg_beta: float | None = 0.995):
        super().__init__()
        self.z_dim, self.n_classes, self.w_dim, self.num_ws = z_dim, n_classes, w_dim, num_ws
        self.num_layers, self.w_avg_beta = num_layers, w_avg_beta
        embed = w_dim if n_classes > 0 else 0
        if n_classes > 0:
            self.embed = FullyConnected(n_classes, embed)
        features = [z_dim + embed] + [w_dim] * num_layers
        for i in range(num_layers):
            setattr(self, f"fc{i}", FullyConnected(features[i], features[i + 1], activation="lrelu",
                                                   lr_multiplier=lr_multiplier))
        if w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: Tensor | None, y: Tensor | None = None, psi: float = 1.0, cutoff: int | None = None,
                update_w_avg: bool = True) -> Tensor:
        if self.n_classes > 0 and y is None:
            raise ValueError(f"a class-conditional mapping ({self.n_classes} classes) was called without labels")
        # in float32 under mixed precision too, as the reference: w, w_avg and truncation keep full precision
        with torch.autocast((z if z is not None else y).device.type, enabled=False):
            parts = []
            if self.z_dim > 0:
                parts.append(normalize_2nd_moment(z.float()))
            if self.n_classes > 0:
                parts.append(normalize_2nd_moment(self.embed(onehot(y, self.n_classes))))
            x = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
            for i in range(self.num_layers):
                x = getattr(self, f"fc{i}")(x)
        if self.w_avg_beta is not None and self.training and update_w_avg:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat(1, self.num_ws, 1)  # (N, num_ws, w_dim)
        if psi != 1:
            if self.w_avg_beta is None:
                raise ValueError("truncation needs the tracked w_avg")
            if self.num_ws is None or cutoff is None:
                x = self.w_avg.lerp(x, psi)
            else:
                x = torch.cat([self.w_avg.lerp(x[:, :cutoff], psi), x[:, cutoff:]], dim=1)
        return x


class SynthesisLayer(nn.Module):
    """Modulated 3×3 conv (demodulated; ``up`` 2: FIR 2× upsampling) → + noise → + bias → lrelu·√2 → clamp."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, up: int = 1,
                 conv_clamp: float | None = None, kernel_size: int = 3):
        super().__init__()
        self.resolution, self.up, self.conv_clamp, self.padding = resolution, up, conv_clamp, kernel_size // 2
        self.register_buffer("resample_filter", setup_filter(), persistent=False)
        self.affine = FullyConnected(w_dim, in_channels, bias_init=1)  # styles start near 1
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: Tensor, w: Tensor, noise_mode: str = "random", fused: bool | None = None) -> Tensor:
        styles = self.affine(w)  # (N, I)
        fused = fuse_here(self.training, x.shape[0], self.weight, fused)  # the reference's: fused at inference
        x = modulated_conv2d(x, self.weight, styles, demodulate=True, up=self.up, padding=self.padding,
                             resample_filter=self.resample_filter, fused=fused)
        if noise_mode == "random":
            x = x + torch.randn(x.shape[0], 1, self.resolution, self.resolution, device=x.device,
                                dtype=x.dtype) * self.noise_strength
        elif noise_mode == "const":
            x = x + self.noise_const * self.noise_strength
        elif noise_mode != "none":
            raise ValueError(f"noise_mode={noise_mode!r}: one of {', '.join(NOISE_MODES)}")
        return bias_act(x, self.bias, act="lrelu", clamp=self.conv_clamp)


class ToRGBLayer(nn.Module):
    """Modulated 1×1 conv to the image channels, styles scaled by 1/√C, no demodulation; + bias, clamp."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, conv_clamp: float | None = None):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnected(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1 / in_channels**0.5

    def forward(self, x: Tensor, w: Tensor, fused: bool | None = None) -> Tensor:
        styles = self.affine(w) * self.weight_gain
        fused = fuse_here(self.training, x.shape[0], self.weight, fused)
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused=fused)
        return bias_act(x, self.bias, clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution of the skip synthesis network (``in_channels`` 0: the 4×4 block, from the constant)."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int,
                 conv_clamp: float | None = None):
        super().__init__()
        self.in_channels, self.resolution = in_channels, resolution
        self.register_buffer("resample_filter", setup_filter(), persistent=False)
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2, conv_clamp=conv_clamp)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, conv_clamp=conv_clamp)
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
        self.num_conv = 1 if in_channels == 0 else 2
        self.num_torgb = 1

    def forward(self, x: Tensor | None, img: Tensor | None, ws: Tensor, noise_mode: str = "random",
                fused: bool | None = None) -> tuple[Tensor, Tensor]:
        w = ws.unbind(dim=1)  # num_conv + 1 of them, the last for the ToRGB
        if self.in_channels == 0:
            x = self.const.unsqueeze(0).repeat(ws.shape[0], 1, 1, 1)
            x = self.conv1(x, w[0], noise_mode, fused)
        else:
            x = self.conv0(x, w[0], noise_mode, fused)
            x = self.conv1(x, w[1], noise_mode, fused)
        y = self.torgb(x, w[self.num_conv], fused)
        img = y if img is None else upsample2d(img, self.resample_filter) + y
        return x, img


class SynthesisNetwork(nn.Module):
    """ws (N, num_ws, w_dim) → images (N, C, R, R), channels min(channel_base // r, channel_max) at side r."""

    def __init__(self, w_dim: int, resolution: int, img_channels: int, channel_base: int, channel_max: int,
                 conv_clamp: float | None = None):
        super().__init__()
        self.w_dim, self.resolution, self.img_channels = w_dim, resolution, img_channels
        self.block_resolutions = [2**i for i in range(2, resolution.bit_length())]
        channels = {r: min(channel_base // r, channel_max) for r in self.block_resolutions}
        self.num_ws = 0
        for r in self.block_resolutions:
            block = SynthesisBlock(channels[r // 2] if r > 4 else 0, channels[r], w_dim, r, img_channels,
                                   conv_clamp)
            setattr(self, f"b{r}", block)
            self.num_ws += block.num_conv
        self.num_ws += 1  # the last ToRGB's own w

    def forward(self, ws: Tensor, noise_mode: str = "random", fused: bool | None = None) -> Tensor:
        if ws.dim() != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"synthesis: ws of shape (N, {self.num_ws}, {self.w_dim}), got {tuple(ws.shape)}")
        x = img = None
        start = 0
        for r in self.block_resolutions:
            block = getattr(self, f"b{r}")
            x, img = block(x, img, ws.narrow(1, start, block.num_conv + block.num_torgb), noise_mode, fused)
            start += block.num_conv
        return img


class StyleGAN2Generator(nn.Module):
    """G(z) or G(z, y) → images (N, C, R, R), linear output. ``mapping(z, y, psi, cutoff)`` → ws,
    ``synthesis(ws, noise_mode)`` → images; in training mode :meth:`styles` mixes two z's (style mixing)."""

    def __init__(self, z_dim: int, w_dim: int, resolution: int, img_channels: int, mapping_layers: int,
                 channel_base: int, channel_max: int, style_mixing: float, conv_clamp: float | None,
                 n_classes: int = 0):
        super().__init__()
        self.z_dim, self.w_dim, self.n_classes, self.style_mixing = z_dim, w_dim, n_classes, style_mixing
        self.synthesis = SynthesisNetwork(w_dim, resolution, img_channels, channel_base, channel_max, conv_clamp)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, n_classes, w_dim, self.num_ws, mapping_layers)

    def styles(self, z: Tensor, y: Tensor | None = None, psi: float = 1.0) -> Tensor:
        """ws (N, num_ws, w_dim) for z, truncated by ``psi``. In training mode, with probability ``style_mixing``,
        the ws from a cutoff on come from a second latent z₂ (the same labels), as −ADA's loss: the cutoff is
        drawn uniformly from 1 … num_ws − 1, then the mixing coin, then z₂ ~ N(0, I) (that order of draws);
        the second mapping does not move w̄. One cutoff for the whole batch; no host sync."""
        ws = self.mapping(z, y, psi=psi)
        if not self.training or self.style_mixing <= 0:
            return ws
        cutoff = torch.empty([], dtype=torch.int64, device=ws.device).random_(1, self.num_ws)
        mix = torch.rand([], device=ws.device) < self.style_mixing
        cutoff = torch.where(mix, cutoff, torch.full_like(cutoff, self.num_ws))
        other = self.mapping(torch.randn_like(z), y, psi=psi, update_w_avg=False)
        later = torch.arange(self.num_ws, device=ws.device).reshape(1, -1, 1) >= cutoff
        return torch.where(later, other, ws)

    def forward(self, z: Tensor, y: Tensor | None = None, psi: float = 1.0, noise_mode: str = "random") -> Tensor:
        if self.n_classes > 0 and y is None:
            raise ValueError(f"a class-conditional StyleGAN2 G ({self.n_classes} classes) needs labels: G(z, y)")
        return self.synthesis(self.styles(z, y, psi), noise_mode=noise_mode)
