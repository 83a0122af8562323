"""StyleGAN2's layers in plain PyTorch (Karras et al. 2020, "Analyzing and Improving the Image Quality of
StyleGAN"; the settings of Karras et al. 2020, "Training Generative Adversarial Networks with Limited Data").
No custom CUDA kernels: every op below is a composition of torch's own, so it runs (and double-backpropagates,
for R1) on any device.

Equalized learning rate (Karras 2018, kept by StyleGAN2): a layer stores w ~ N(0, 1)/λ and uses
w·λ/√fan_in at run time (λ the learning-rate multiplier, 1 but for the mapping network's 0.01), its bias b·λ.
Adam's steps are scale-free, so every weight then learns at the same relative speed whatever its fan-in.

Activation: leaky ReLU with slope 0.2, times √2 (He's gain, so unit-variance inputs keep a unit second moment),
then an optional clamp to ±conv_clamp (−ADA clamps at 256 to keep fp16 finite; it is a no-op in practice in fp32).

FIR resampling (``upfirdn2d``): upsample by inserting up − 1 zeros after every pixel, pad (negative: crop),
convolve with the 2-D filter f, keep every down-th pixel. The filter is the outer product of [1, 3, 3, 1]
normalised to sum 1; 2× upsampling multiplies it by up² = 4 so a constant image stays constant (each output
pixel sees a quarter of the taps' mass), 2× downsampling keeps the gain 1 (a local weighted mean).

Modulated convolution (StyleGAN2 §2.2): per sample n, w'_{n,o,i,k} = w_{o,i,k}·s_{n,i} (s the style), and with
demodulation w''_{n,o,i,k} = w'_{n,o,i,k} / √(Σ_{i,k} w'²_{n,o,i,k} + 1e-8), which gives every output channel
unit variance for unit-variance i.i.d. inputs. Fused: the batch becomes the groups of one grouped convolution
(input (1, N·I, H, W), weights (N·O, I, k, k)); not fused: scale the input by s, convolve with the shared w,
scale the output by the demodulation coefficients (equal in exact arithmetic; the reference fuses at inference
and scales in training, where one shared weight makes the weight gradient cheaper; here inference fuses while the
per-sample weights stay under ``FUSED_LIMIT``).

All convolutions here are correlations, as ``F.conv2d``. The reference's upsampling layers convolve (their
kernels flipped): equal in distribution for N(0, 1) weights; a port of its checkpoints flips those kernels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)
FIR_TAPS = (1, 3, 3, 1)

Padding = int | Sequence[int]


def normalize_2nd_moment(x: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """x / √(mean(x²) + eps) along ``dim``: z (and the label embedding) on the sphere of radius √dim."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def setup_filter(taps: Sequence[float] = FIR_TAPS) -> Tensor:
    """The 2-D FIR filter (k, k): the outer product of ``taps`` with itself, normalised to sum 1 (float32)."""
    f = torch.as_tensor(taps, dtype=torch.float32)
    f = torch.outer(f, f)
    return f / f.sum()


def _pads(padding: Padding) -> tuple[int, int, int, int]:
    """(x0, x1, y0, y1) from one number or [x, y] or [x0, x1, y0, y1]."""
    if isinstance(padding, int):
        return padding, padding, padding, padding
    if len(padding) == 2:
        return padding[0], padding[0], padding[1], padding[1]
    x0, x1, y0, y1 = padding
    return x0, x1, y0, y1


def upfirdn2d(x: Tensor, f: Tensor, up: int = 1, down: int = 1, padding: Padding = 0, gain: float = 1.0) -> Tensor:
    """Zero-insertion upsampling by ``up``, padding (x0, x1, y0, y1) (negative: crop), convolution with the 2-D
    filter ``f`` (k, k) on each channel, then every ``down``-th pixel: (N, C, H, W) → (N, C, H', W') with
    H' = (H·up + y0 + y1 − k) // down + 1. ``gain`` scales the filter (up² for an upsampling that keeps DC)."""
    n, c, h, w = x.shape
    x0, x1, y0, y1 = _pads(padding)
    if up > 1:  # x0 0 … 0 x1 0 … 0: up − 1 zeros after every pixel
        x = F.pad(x.reshape(n, c, h, 1, w, 1), [0, up - 1, 0, 0, 0, up - 1]).reshape(n, c, h * up, w * up)
    x = F.pad(x, [max(x0, 0), max(x1, 0), max(y0, 0), max(y1, 0)])
    x = x[:, :, max(-y0, 0): x.shape[2] - max(-y1, 0), max(-x0, 0): x.shape[3] - max(-x1, 0)]
    # a true convolution (F.conv2d correlates: flip the taps), one depthwise filter per channel
    kernel = (f * gain).to(x.dtype).flip([0, 1])[None, None].expand(c, 1, *f.shape)
    x = F.conv2d(x, kernel, groups=c)
    return x[:, :, ::down, ::down]


def upsample2d(x: Tensor, f: Tensor, up: int = 2) -> Tensor:
    """(N, C, H, W) → (N, C, H·up, W·up) with the FIR filter, gain up² (a constant image stays constant)."""
    k = f.shape[-1]
    p0, p1 = (k + up - 1) // 2, (k - up) // 2
    return upfirdn2d(x, f, up=up, padding=[p0, p1, p0, p1], gain=up**2)


def downsample2d(x: Tensor, f: Tensor, down: int = 2) -> Tensor:
    """(N, C, H, W) → (N, C, H/down, W/down) with the FIR filter, gain 1 (a weighted local mean)."""
    k = f.shape[-1]
    p0, p1 = (k - down + 1) // 2, (k - down) // 2
    return upfirdn2d(x, f, down=down, padding=[p0, p1, p0, p1])


def bias_act(x: Tensor, b: Tensor | None = None, act: str = "linear", gain: float | None = None,
             clamp: float | None = None) -> Tensor:
    """x + b (over dim 1), then the activation (linear | lrelu, slope 0.2), times ``gain`` (None: the activation's
    own, √2 for lrelu and 1 for linear), then clamped to ±``clamp`` (None: not clamped)."""
    if b is not None:
        x = x + b.to(x.dtype).reshape([1, -1] + [1] * (x.dim() - 2))
    if act == "lrelu":
        x = F.leaky_relu(x, LRELU_SLOPE)
        gain = LRELU_GAIN if gain is None else gain
    elif act != "linear":
        raise ValueError(f"bias_act: unknown activation {act!r} (linear or lrelu)")
    if gain is not None and gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


def conv2d_resample(x: Tensor, w: Tensor, f: Tensor | None = None, up: int = 1, down: int = 1, padding: int = 0,
                    groups: int = 1) -> Tensor:
    """Correlation with w (O, I/groups, k, k) at zero padding ``padding``, on the input upsampled ``up``× or
    followed by a ``down``× downsampling, both with the FIR filter ``f``; the padding is with respect to the
    upsampled image and applied once, before the filter and the convolution, as the reference's conv2d_resample.

    Up: a stride-``up`` transposed convolution, then the FIR (the same linear map as zero insertion → FIR → conv,
    at a quarter of the multiplications). Down: the FIR, then a strided convolution (1×1 kernels: downsample
    first, then convolve).
    """
    if up > 1 and down > 1:
        raise ValueError("conv2d_resample: upsampling and downsampling at once is not supported")
    out_channels, in_per_group, kh, kw = w.shape
    if up == 1 and down == 1:
        return F.conv2d(x, w, padding=padding, groups=groups)
    fk = f.shape[-1]
    if down > 1:
        p0, p1 = padding + (fk - down + 1) // 2, padding + (fk - down) // 2
        if kh == 1 and kw == 1:
            return F.conv2d(upfirdn2d(x, f, down=down, padding=[p0, p1, p0, p1]), w, groups=groups)
        return F.conv2d(upfirdn2d(x, f, padding=[p0, p1, p0, p1]), w, stride=down, groups=groups)
    p0, p1 = padding + (fk + up - 1) // 2 - (kw - 1), padding + (fk - up) // 2 - (kw - up)
    trim = max(min(-p0, -p1), 0)  # padding the transposed convolution can crop itself
    # conv_transpose2d correlates the zero-inserted input with the flipped kernel: flip it back; its weight is
    # (in, out/groups, k, k), so swap the roles inside each group
    wt = w.flip([2, 3]).reshape(groups, out_channels // groups, in_per_group, kh, kw).transpose(1, 2)
    x = F.conv_transpose2d(x, wt.reshape(groups * in_per_group, out_channels // groups, kh, kw), stride=up,
                           padding=trim, groups=groups)
    return upfirdn2d(x, f, padding=[p0 + trim, p1 + trim, p0 + trim, p1 + trim], gain=up**2)


FUSED_LIMIT = 2**28  # per-sample weight elements (1 GiB in fp32): the reference's metric batch of 64 at 512 channels
# (151M) fuses, the lab's evaluation batch of 500 at 512 channels (1.18G, 4.7 GB a layer) does not


def fuse_here(training: bool, n: int, weight: Tensor, fused: bool | None = None) -> bool:
    """Whether a modulated convolution of ``n`` samples with ``weight`` runs fused: ``fused`` when given, else at
    inference (the reference's choice) while the (N, O, I, k, k) per-sample weights stay under FUSED_LIMIT."""
    if fused is not None:
        return fused
    return not training and n * weight.numel() <= FUSED_LIMIT


def modulated_conv2d(x: Tensor, weight: Tensor, styles: Tensor, demodulate: bool = True, up: int = 1,
                     padding: int = 0, resample_filter: Tensor | None = None, fused: bool = True) -> Tensor:
    """StyleGAN2's modulated convolution of x (N, I, H, W) with weight (O, I, k, k) scaled per sample by
    styles (N, I), demodulated when ``demodulate`` (module docstring); ``up`` 2: on the input upsampled with
    ``resample_filter``. ``fused``: one grouped convolution with per-sample weights (the batch as groups);
    otherwise x·s, the shared convolution, then ·d (no per-sample weights in memory)."""
    n, in_channels = x.shape[:2]
    out_channels, _, kh, kw = weight.shape
    if styles.shape != (n, in_channels) or weight.shape[1] != in_channels:
        raise ValueError(f"modulated_conv2d: x {tuple(x.shape)}, weight {tuple(weight.shape)} and styles "
                         f"{tuple(styles.shape)} disagree")
    if not fused:
        if demodulate:  # Σ_{i,k} (w_oik s_i)² = Σ_i s_i² Σ_k w_oik²: no (N, O, I, k, k) tensor; in float32 (autocast
            # off): a sum over 512 inputs passes fp16's 65,504 once the styles' RMS passes about 4
            with torch.autocast(x.device.type, enabled=False):
                dcoefs = (styles.float().square() @ weight.float().square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()
        x = x * styles.to(x.dtype).reshape(n, -1, 1, 1)
        x = conv2d_resample(x, weight.to(x.dtype), resample_filter, up=up, padding=padding)
        return x * dcoefs.to(x.dtype).reshape(n, -1, 1, 1) if demodulate else x
    w = weight.unsqueeze(0) * styles.reshape(n, 1, -1, 1, 1)  # (N, O, I, k, k)
    if demodulate:
        w = w * (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt().reshape(n, -1, 1, 1, 1)
    x = x.reshape(1, n * in_channels, *x.shape[2:])
    x = conv2d_resample(x, w.reshape(n * out_channels, in_channels, kh, kw).to(x.dtype), resample_filter, up=up,
                        padding=padding, groups=n)
    return x.reshape(n, out_channels, *x.shape[2:])


class FullyConnected(nn.Module):
    """Equalized-lr linear layer: weight (out, in) ~ N(0, 1)/λ used as weight·λ/√in, bias used as bias·λ
    (λ = ``lr_multiplier``; the bias starts at ``bias_init``), then ``activation`` (linear | lrelu with gain √2)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, activation: str = "linear",
                 lr_multiplier: float = 1.0, bias_init: float = 0.0):
        super().__init__()
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def effective_weight(self) -> Tensor:
        return self.weight * self.weight_gain

    def forward(self, x: Tensor) -> Tensor:
        w = self.effective_weight().to(x.dtype)
        b = None if self.bias is None else self.bias.to(x.dtype) * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, act=self.activation)

    def extra_repr(self) -> str:
        out_features, in_features = self.weight.shape
        return f"in={in_features}, out={out_features}, activation={self.activation}, lr_multiplier={self.bias_gain}"


class Conv2dLayer(nn.Module):
    """Equalized-lr convolution: weight (out, in, k, k) ~ N(0, 1) used as weight/√(in·k²), zero bias, "same"
    padding k // 2, optional 2× FIR up- or downsampling, then ``activation`` with its gain times the call's
    ``gain`` and the clamp ±conv_clamp·gain (None: no clamp)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 activation: str = "linear", up: int = 1, down: int = 1, conv_clamp: float | None = None):
        super().__init__()
        self.activation, self.up, self.down, self.conv_clamp = activation, up, down, conv_clamp
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.act_gain = LRELU_GAIN if activation == "lrelu" else 1.0
        self.register_buffer("resample_filter", setup_filter(), persistent=False)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def forward(self, x: Tensor, gain: float = 1.0) -> Tensor:
        w = (self.weight * self.weight_gain).to(x.dtype)
        x = conv2d_resample(x, w, self.resample_filter, up=self.up, down=self.down, padding=self.padding)
        clamp = None if self.conv_clamp is None else self.conv_clamp * gain
        return bias_act(x, self.bias, act=self.activation, gain=self.act_gain * gain, clamp=clamp)

    def extra_repr(self) -> str:
        o, i, k, _ = self.weight.shape
        return (f"in={i}, out={o}, kernel={k}, activation={self.activation}, up={self.up}, down={self.down}, "
                f"conv_clamp={self.conv_clamp}")
