"""StyleGAN2 (Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN") with the settings of
StyleGAN2-ADA (Karras et al. 2020, "Training Generative Adversarial Networks with Limited Data"), in plain
PyTorch, sized from the data's shape: square images of side R = 2^r ≥ 8.

G (gan_lab/nets/stylegan2_g.py): mapping network z [, y] → w (``mapping_layers`` lrelu layers at learning-rate
multiplier 0.01, w̄ tracked for truncation), then the skip synthesis network from a 4×4 constant with
modulated, demodulated 3×3 convs, per-pixel noise and a ToRGB per resolution; style mixing in training.
D (gan_lab/nets/stylegan2_d.py): residual blocks R → 4 (``d_architecture=orig``: without the skips), minibatch
stddev, conv, FC, out; with classes −ADA's projection of the output on a mapped label.
Layers (gan_lab/nets/stylegan_ops.py): equalized learning rate, the [1, 3, 3, 1] FIR resampler, modulated conv.

Channels at side r: min(channel_base // r, channel_max); num_ws = 2·log₂R − 2. Parameter counts (RGB; z_dim = w_dim
= 512, channel_max 512, channel_base 16384; the 32 px rows equal the reference code's counts, and
tests/test_stylegan2_nets.py checks the first):

  side  channels 4 → R             mapping   G        D
  32    512, 512, 512, 512         2 layers  19.95M   21.51M  (−ADA's CIFAR-10 G; its "orig" D: 20.72M)
  32    512, 512, 512, 512         8 layers  21.52M   21.51M
  64    512, 512, 512, 512, 256    8 layers  23.82M   23.41M
  8     32, 32 (channel_max 32,    2 layers  0.036M   0.046M  (1 channel, z_dim = w_dim = 32: the CPU size)
        z_dim = w_dim = 32)

−ADA's CIFAR-10 configuration (``--cfg cifar``): channel_base 32768 (the same widths at 32 px: all 512),
mapping 2 layers, minibatch-stddev group 32, no style mixing, and its D without the residual skips
(``d_architecture=orig``: 20,720,641 parameters, as the reference's): conf/experiment/stylegan2_cifar.yaml. The
reference also runs its top resolutions in fp16 (conv_clamp 256 is the guard for that): here everything is fp32.

Interfaces the lab relies on: G(z) → (N, C, R, R), D(x) → logits (N,), D.features(x) → (N, C₄),
D.from_features(f) → logits; with ``n_classes`` > 0 the networks condition themselves (NATIVE_CONDITIONING):
G(z, y), D(x, y), D.judge(x, y) → (logits, None). Also G.mapping(z, y=None, psi=1.0, cutoff=None) → ws
(N, num_ws, w_dim), G.synthesis(ws, noise_mode="random") → images, G.num_ws, G.z_dim.
"""

from __future__ import annotations

from typing import Annotated, Literal

from torch import nn

from gan_lab.checks import above, at_least, fraction
from gan_lab.data.base import DataSpec
from gan_lab.errors import ConfigError
from gan_lab.nets.layers import ZDim, not_power_of_two
from gan_lab.nets.stylegan2_d import MinibatchStd, StyleGAN2Discriminator
from gan_lab.nets.stylegan2_g import MappingNetwork, StyleGAN2Generator

__all__ = ["NATIVE_CONDITIONING", "MappingNetwork", "MinibatchStd", "StyleGAN2Discriminator", "StyleGAN2Generator",
           "build", "channels", "fits"]

# The class-conditioning modes these networks implement themselves (−ADA's: a label embedding joined to z in
# G's mapping, D's output projected on a mapped label): under them the lab passes ``n_classes`` to
# :func:`build` instead of wrapping the networks (gan_lab/nets/conditional.py).
NATIVE_CONDITIONING = ("projection",)


def channels(side: int, channel_base: int, channel_max: int) -> dict[int, int]:
    """Channels per resolution 4, 8, …, side: min(channel_base // r, channel_max)."""
    return {2**i: min(channel_base // 2**i, channel_max) for i in range(2, side.bit_length())}


def fits(spec: DataSpec, d_norm: str = "none", mbstd_channels: int = 1, channel_base: int = 16384,
         channel_max: int = 512, **_) -> ConfigError | None:
    """The refusal of a normalised D (``d_norm`` resolved: auto has become the regularizer's preference), of data
    StyleGAN2 cannot be sized for (not square images of a power-of-two side ≥ 8), of widths that vanish, or of
    minibatch-stddev channels that do not divide D's last width; or None."""
    if d_norm not in ("none", "auto"):
        return ConfigError("model.d_norm", d_norm, "none with model=stylegan2",
                           "StyleGAN2's D has no normalisation layers; d_norm=auto resolves to the regularizer's "
                           "preference (batch with regularizer=none, layer with gp): set model.d_norm=none.")
    refusal = not_power_of_two(spec, "stylegan2", "StyleGAN2")
    if refusal is not None:
        return refusal
    side = spec.shape[1]
    widths = channels(side, channel_base, channel_max)
    if min(widths.values()) < 1:
        return ConfigError("model.channel_base", channel_base, f"at least {side} at side {side}",
                           f"min(channel_base // r, channel_max) is 0 at side r = {side}")
    if mbstd_channels and widths[4] % mbstd_channels:
        return ConfigError("model.mbstd_channels", mbstd_channels, f"a divisor of D's 4×4 width {widths[4]}",
                           "the minibatch stddev splits D's channels into mbstd_channels groups")
    return None


def build(spec: DataSpec, z_dim: ZDim = 512,
          w_dim: Annotated[int, at_least(1), "dimensions of the intermediate latent w (the styles' input)"] = 512,
          mapping_layers: Annotated[int, at_least(1), "FC layers of G's mapping network z → w (−ADA's CIFAR-10: "
                                                      "2; StyleGAN2: 8)"] = 8,
          channel_base: Annotated[int, at_least(1), "channels at side r: min(channel_base // r, channel_max)"]
          = 16384,
          channel_max: Annotated[int, at_least(1), "cap on every layer's channels"] = 512,
          mbstd_group: Annotated[int, at_least(1), "minibatch-stddev group size (−ADA's CIFAR-10: 32; "
                                                   "StyleGAN2: 4)"] = 4,
          mbstd_channels: Annotated[int, at_least(0), "minibatch-stddev feature maps; 0 = off"] = 1,
          style_mixing: Annotated[float, fraction(high_open=False), "probability of mixing two z's styles in a "
                                                                    "training G call (−ADA's CIFAR-10: 0)"] = 0.9,
          conv_clamp: Annotated[float | None, above(0.0), "clamp of the conv layers' outputs to ±conv_clamp; "
                                                          "null = none (−ADA: 256)"] = 256.0,
          d_norm: Annotated[Literal["none", "auto"], "D's normalisation: none (StyleGAN2 has none) | auto (the "
                                                     "regularizer's preference, which must then be none: r1, sn)"]
          = "none",
          n_classes: Annotated[int, at_least(0), "classes the networks condition on themselves (−ADA); 0 = "
                                                 "unconditional (the lab sets it under model.conditional)"] = 0,
          d_architecture: Annotated[Literal["resnet", "orig"], "D's blocks: resnet (StyleGAN2's residual skips) | "
                                                               "orig (none: −ADA's CIFAR-10 D)"] = "resnet",
          ) -> tuple[nn.Module, nn.Module]:
    """(StyleGAN2Generator, StyleGAN2Discriminator) for data :func:`fits` accepts; the defaults are StyleGAN2
    config F with −ADA's settings (module docstring)."""
    refusal = fits(spec, d_norm=d_norm, mbstd_channels=mbstd_channels, channel_base=channel_base,
                   channel_max=channel_max)
    if refusal is not None:
        raise refusal
    channels_, side = spec.shape[0], spec.shape[1]
    g = StyleGAN2Generator(z_dim, w_dim, side, channels_, mapping_layers, channel_base, channel_max, style_mixing,
                           conv_clamp, n_classes)
    d = StyleGAN2Discriminator(side, channels_, channel_base, channel_max, mbstd_group, mbstd_channels, conv_clamp,
                               n_classes, d_architecture)
    return g, d
