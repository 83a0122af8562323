"""ADA's augmentation pipeline, the ``bgc`` set (Karras et al. 2020, "Training Generative Adversarial Networks
with Limited Data", §2.3 and Appendix B.1; reference: NVlabs/stylegan2-ada-pytorch, training/augment.py,
``AugmentPipe``), used by the DiffAugment/ADA trick (gan_lab/tricks/diffaug.py, ``tricks.ada_target`` alone).

Images are NCHW in [-1, 1], with 1 or 3 channels. Each transform acts on each sample with probability p·m, m its
strength multiplier (1 for every transform of bgc), else that sample passes through it unchanged; p is a 0-dim
tensor (ADA's ``system.ada_p``), compared on its device, so no draw syncs with the host. In order:

blit   ``xflip``     the column coordinate x ↦ −x with i ~ U{0, 1} (half the chosen samples are flipped)
       ``rotate90``  rotation by i·90°, i ~ U{0, 1, 2, 3}
       ``xint``      shift by round(t·size) pixels, t ~ U(−0.125, 0.125) per axis (one decision for both axes)
geom   ``scale``     isotropic scale s = 2^(0.2·n), n ~ N(0, 1): lognormal, ln s has std 0.2·ln 2
       ``rotate``    a pre-rotation θ ~ U(−π, π) before ``aniso`` and a post-rotation after it, each with
                     p_rot = 1 − √(1 − p·m), so that P(pre or post) = p·m
       ``aniso``     anisotropic scale (s, 1/s), s = 2^(0.2·n)
       ``xfrac``     shift by t·size, t ~ N(0, 0.125²) per axis
color  ``brightness``  + b on every channel, b ~ N(0, 0.2²)
       ``contrast``  × c about 0 (mid-grey of [-1, 1], not the image mean), c = 2^(0.5·n)
       ``lumaflip``  the Householder reflection I − 2·v·vᵀ about the luma axis v = (1, 1, 1)/√3, i ~ U{0, 1}
       ``hue``       rotation by θ ~ U(−π, π) about v
       ``saturation``  v·vᵀ + (I − v·vᵀ)·s, s = 2^n (s = 0: the per-pixel channel mean, grey)
cutout ``cutout``    zero a square of half the side centred at c ~ U(0, 1)² (not in bgc; R3GAN adds it)

Geometry is composed into one 3×3 homogeneous matrix G⁻¹ per sample (mapping output pixel coordinates, centred
on the image, to input ones; G⁻¹ ← G⁻¹·A_k⁻¹ in the order above) and the image resampled once, as the reference
does: reflect-pad, upsample 2× with the orthogonal ``sym6`` wavelet low-pass filter, bilinear ``grid_sample``
of the 2× canvas (zeros outside), downsample 2× with the same filter (separable, applied as dense matrix
products built once per size). The wavelet is orthogonal (down∘up = I), so an identity G⁻¹ through the filters
returns the image to about 1e-5. Two departures from the reference:

* padding: it pads by the smallest margin covering the batch's transformed corners plus the filters' reach,
  computed on the host (a sync per call); gan_lab always pads by size − 1, the most reflection allows and the
  reference's own cap: no sync, and the same samples wherever the reference's padding reaches, at up to
  (3·size / (size + 12))² its upsampling work when a whole batch stays near the identity;
* pixel blits: a sample whose G⁻¹ maps pixel centres onto pixel centres (x-flips, quarter turns and whole-pixel
  shifts, nothing else) is copied pixel for pixel from the reflect-padded image, what the paper's "pixel
  blitting" means. Through the filters sym6's asymmetry blurs a flip or a quarter turn (measured: up to 0.29
  on 16×16 white noise in [-1, 1], 0.02 on a smooth 32×32 image); a whole-pixel shift comes back exact either way.

Samples whose G⁻¹ is exactly the identity (nothing drawn for them) pass through untouched, so p = 0 is the
identity exactly. Colour is composed into one 4×4 matrix C per sample (C ← C_k·C), applied to RGB as
C[:3, :3]·rgb + C[:3, 3]. With one channel, as the reference does, hue and saturation are skipped (not even drawn)
and the grey value g is mapped by C's RGB rows averaged: g ↦ (Σ_{i,j<3} C_ij / 3)·g + Σ_{i<3} C_i3 / 3
(brightness, contrast and luma flip, which negates g). Cutout multiplies by its mask last. Random draws are float32,
from ``generator`` (on its device) or the global RNG of x's device, in the reference's order (each transform's
value, then its decision); everything is vectorised over the batch and differentiable
with respect to the images (grid_sample and matrix products; twice, as R1 through T needs).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from functools import cache

import torch
import torch.nn.functional as F
from torch import Tensor

from gan_lab.augment import Transform
from gan_lab.errors import ConfigError

KEY = "tricks.ada_pipeline"
BLIT = ("xflip", "rotate90", "xint")
GEOM = ("scale", "rotate", "aniso", "xfrac")
COLOR = ("brightness", "contrast", "lumaflip", "hue", "saturation")
GEOMETRIC = BLIT + GEOM
BGC = BLIT + GEOM + COLOR  # the paper's bgc set, every strength multiplier 1
ALL = BGC + ("cutout",)  # the reference's cutout after colour (its filter and noise transforms are not built)

XINT_MAX = 0.125  # largest integer shift, as a fraction of the size
SCALE_STD = 0.2  # log2 std of the isotropic scale
ROTATE_MAX = 1.0  # rotation range, 1 = the full circle
ANISO_STD = 0.2  # log2 std of the anisotropic scale
XFRAC_STD = 0.125  # std of the fractional shift, as a fraction of the size
BRIGHTNESS_STD = 0.2
CONTRAST_STD = 0.5  # log2 std
HUE_MAX = 1.0  # hue rotation range, 1 = the full circle
SATURATION_STD = 1.0  # log2 std
CUTOUT_SIZE = 0.5  # side of the cut-out square, as a fraction of the image's

# sym6's orthogonal low-pass decomposition filter (Daubechies' least-asymmetric wavelet, 12 taps), the
# reference's filter for geometric resampling; Σh = √2, Σh² = 1, Σ_k h_k·h_{k+2m} = 0 for m ≠ 0.
SYM6 = (0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
        0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
        -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148)
MARGIN = len(SYM6) // 4  # 3: how far (original pixels) the resampling canvas extends past the image


def _strengths(transforms: Mapping[str, float] | Iterable[str]) -> dict[str, float]:
    """{transform: its probability multiplier} from names (multiplier 1) or a mapping; unknown names refused."""
    strengths = dict(transforms) if isinstance(transforms, Mapping) else dict.fromkeys(transforms, 1.0)
    unknown = sorted(set(strengths) - set(ALL))
    if unknown:
        raise ConfigError(KEY, ",".join(strengths), "a subset of " + ", ".join(ALL),
                          f"Unknown transform(s): {', '.join(map(repr, unknown))}.")
    return strengths


class _Draws:
    """Per-sample randomness for a batch of n, drawn like gan_lab/augment.py's (float32, on the generator's
    device or x's, returned on x's), and the probability p on x's device."""

    def __init__(self, x: Tensor, probability: Tensor | float, generator: torch.Generator | None):
        self.n, self.device, self.generator = x.shape[0], x.device, generator
        self.at = generator.device if generator is not None else x.device
        self.p = torch.as_tensor(probability, dtype=torch.float32).to(x.device)

    def uniform(self, *shape: int) -> Tensor:
        return torch.rand(self.n, *shape, generator=self.generator, device=self.at).to(self.device)

    def normal(self, *shape: int) -> Tensor:
        return torch.randn(self.n, *shape, generator=self.generator, device=self.at).to(self.device)

    def gate(self, value: Tensor, neutral: float, p: Tensor) -> Tensor:
        """``value`` for the samples chosen with probability p (one decision per sample), ``neutral`` for the rest."""
        chosen = self.uniform(*([1] * (value.dim() - 1))) < p
        return torch.where(chosen, value, torch.full_like(value, neutral))


def _matrix(rows: list[list[Tensor | float]], like: Tensor) -> Tensor:
    """(N, k, k) from k rows of k entries, each an (N,) tensor or a number (broadcast)."""
    entries = [e if isinstance(e, Tensor) else torch.full_like(like, e) for row in rows for e in row]
    return torch.stack(entries, dim=-1).view(-1, len(rows), len(rows))


def _affine(a, b, c, d, tx, ty, like: Tensor) -> Tensor:
    return _matrix([[a, b, tx], [c, d, ty], [0.0, 0.0, 1.0]], like)


def _rotation(cos: Tensor, sin: Tensor) -> Tensor:
    return _affine(cos, -sin, sin, cos, 0.0, 0.0, cos)


def _draw_geometry(d: _Draws, m: dict[str, float], height: int, width: int) -> Tensor:
    """G⁻¹ (N, 3, 3): output pixel coordinates (centred) to input ones, the reference's composition order."""
    g = torch.eye(3, device=d.device).expand(d.n, 3, 3)
    one = torch.ones(d.n, device=d.device)
    if "xflip" in m:
        i = d.gate(torch.floor(d.uniform() * 2), 0.0, d.p * m["xflip"])
        g = g @ _affine(1 - 2 * i, 0.0, 0.0, one, 0.0, 0.0, one)
    if "rotate90" in m:  # R(i·π/2) from a table: exact zeros and ones, so a quarter turn is an exact blit
        i = d.gate(torch.floor(d.uniform() * 4), 0.0, d.p * m["rotate90"]).long()
        cos, sin = _quarter_turns(one.device, one.dtype)
        g = g @ _rotation(cos[i], sin[i])
    if "xint" in m:
        t = d.gate((d.uniform(2) * 2 - 1) * XINT_MAX, 0.0, d.p * m["xint"])
        g = g @ _affine(one, 0.0, 0.0, one, -torch.round(t[:, 0] * width), -torch.round(t[:, 1] * height), one)
    if "scale" in m:
        s = d.gate(torch.exp2(d.normal() * SCALE_STD), 1.0, d.p * m["scale"])
        g = g @ _affine(1 / s, 0.0, 0.0, 1 / s, 0.0, 0.0, one)
    p_rot = 1 - torch.sqrt((1 - d.p * m.get("rotate", 0.0)).clamp(0, 1))  # P(pre or post) = p·m

    def rotation() -> Tensor:
        theta = d.gate((d.uniform() * 2 - 1) * math.pi * ROTATE_MAX, 0.0, p_rot)
        return _rotation(torch.cos(theta), torch.sin(theta))

    if "rotate" in m:
        g = g @ rotation()  # before the anisotropic scale
    if "aniso" in m:
        s = d.gate(torch.exp2(d.normal() * ANISO_STD), 1.0, d.p * m["aniso"])
        g = g @ _affine(1 / s, 0.0, 0.0, s, 0.0, 0.0, one)
    if "rotate" in m:
        g = g @ rotation()  # after it
    if "xfrac" in m:
        t = d.gate(d.normal(2) * XFRAC_STD, 0.0, d.p * m["xfrac"])
        g = g @ _affine(one, 0.0, 0.0, one, -t[:, 0] * width, -t[:, 1] * height, one)
    return g


@cache
def _luma_on(device: torch.device) -> tuple[Tensor, Tensor]:
    """(I, v·vᵀ), v = (1, 1, 1, 0)/√3 the luma axis, on ``device`` (made there once: no host copy per draw)."""
    v = torch.tensor([1.0, 1.0, 1.0, 0.0], device=device) / math.sqrt(3)
    return torch.eye(4, device=device), torch.outer(v, v)


@cache
def _quarter_turns(device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """(cos, sin) of 0, π/2, π, 3π/2, exact, on ``device`` (made there once)."""
    return (torch.tensor([1.0, 0.0, -1.0, 0.0], device=device, dtype=dtype),
            torch.tensor([0.0, 1.0, 0.0, -1.0], device=device, dtype=dtype))


@cache
def _scale_on(sx: float, sy: float, device: torch.device, dtype: torch.dtype) -> Tensor:
    """diag(sx, sy, 1) on ``device`` (made there once: the resampling's frames are the same every draw)."""
    return torch.diag(torch.tensor([sx, sy, 1.0], device=device, dtype=dtype))


@cache
def _shift_on(t: float, device: torch.device, dtype: torch.dtype) -> Tensor:
    m = torch.eye(3, device=device, dtype=dtype)
    m[:2, 2] = t
    return m


# The colour factors, (N,) parameters -> (N, 4, 4) maps of homogeneous RGB, each exactly I at its neutral value.
def brightness_matrix(b: Tensor) -> Tensor:
    """rgb + b."""
    return _matrix([[1.0, 0.0, 0.0, b], [0.0, 1.0, 0.0, b], [0.0, 0.0, 1.0, b], [0.0, 0.0, 0.0, 1.0]], b)


def contrast_matrix(c: Tensor) -> Tensor:
    """c·rgb: about 0, mid-grey of [-1, 1]."""
    return _matrix([[c, 0.0, 0.0, 0.0], [0.0, c, 0.0, 0.0], [0.0, 0.0, c, 0.0], [0.0, 0.0, 0.0, 1.0]], c)


def lumaflip_matrix(i: Tensor) -> Tensor:
    """I − 2i·v·vᵀ: i = 1 reflects rgb through the plane normal to the luma axis, rgb − 2·mean_c(rgb)."""
    eye, vv = _luma_on(i.device)
    return eye - 2 * vv * i.view(-1, 1, 1)


def hue_matrix(theta: Tensor) -> Tensor:
    """Rotation by θ about the luma axis (Rodrigues): cos θ·I + sin θ·[v]ₓ + (1 − cos θ)·v·vᵀ."""
    eye, vv = _luma_on(theta.device)
    x = y = z = torch.sin(theta) / math.sqrt(3)  # sin θ·v
    cross = _matrix([[0.0, -z, y, 0.0], [z, 0.0, -x, 0.0], [-y, x, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]], theta)
    cos = torch.cos(theta).view(-1, 1, 1)
    rot = cos * eye + cross + (1 - cos) * vv
    rot[:, 3, 3] = 1.0
    return rot


def saturation_matrix(s: Tensor) -> Tensor:
    """v·vᵀ + (I − v·vᵀ)·s, written I + (s − 1)(I − v·vᵀ) so that s = 1 is I exactly; s = 0: grey."""
    eye, vv = _luma_on(s.device)
    return eye + (s.view(-1, 1, 1) - 1) * (eye - vv)


def _draw_colour(d: _Draws, m: dict[str, float], channels: int) -> Tensor:
    """C (N, 4, 4): homogeneous RGB in to RGB out, the reference's composition order (C ← C_k·C)."""
    c = torch.eye(4, device=d.device).expand(d.n, 4, 4)
    if "brightness" in m:
        c = brightness_matrix(d.gate(d.normal() * BRIGHTNESS_STD, 0.0, d.p * m["brightness"])) @ c
    if "contrast" in m:
        c = contrast_matrix(d.gate(torch.exp2(d.normal() * CONTRAST_STD), 1.0, d.p * m["contrast"])) @ c
    if "lumaflip" in m:
        c = lumaflip_matrix(d.gate(torch.floor(d.uniform() * 2), 0.0, d.p * m["lumaflip"])) @ c
    if channels > 1 and "hue" in m:  # grey images: neither drawn nor applied, as the reference
        c = hue_matrix(d.gate((d.uniform() * 2 - 1) * math.pi * HUE_MAX, 0.0, d.p * m["hue"])) @ c
    if channels > 1 and "saturation" in m:
        c = saturation_matrix(d.gate(torch.exp2(d.normal() * SATURATION_STD), 1.0, d.p * m["saturation"])) @ c
    return c


def _draw_cutout(d: _Draws, m: dict[str, float], height: int, width: int) -> Tensor:
    """(N, 1, H, W) masks, 0 inside each chosen sample's square: pixel (i, j) is cut when both |(j + ½)/W − c_x|
    and |(i + ½)/H − c_y| fall below half the square's side (the reference's draws: the decision, then c)."""
    side = torch.where(d.uniform(1) < d.p * m["cutout"], CUTOUT_SIZE, 0.0).view(d.n, 1, 1, 1)
    centre = d.uniform(2).view(d.n, 2, 1, 1)
    xs = (torch.arange(width, device=d.device, dtype=torch.float32) + 0.5) / width
    ys = (torch.arange(height, device=d.device, dtype=torch.float32) + 0.5) / height
    keep_x = (xs.view(1, 1, 1, width) - centre[:, :1]).abs() >= side / 2
    keep_y = (ys.view(1, 1, height, 1) - centre[:, 1:]).abs() >= side / 2
    return (keep_x | keep_y).float()


# --- applying a draw ----------------------------------------------------------------------------------------------

def _filter(dtype: torch.dtype = torch.float64) -> Tensor:
    """sym6 normalised to unit sum (the reference's ``setup_filter``)."""
    f = torch.tensor(SYM6, dtype=torch.float64)
    return (f / f.sum()).to(dtype)


def _upsample_1d(x: Tensor) -> Tensor:
    """(B, L) -> (B, 2L): zeros between samples, then convolution with 2f (the reference's ``upsample2d`` along
    one axis: padding (taps + 1)//2 before, (taps − 2)//2 after)."""
    f, k = _filter(x.dtype), len(SYM6)
    z = F.pad(x.unsqueeze(-1), [0, 1]).flatten(1)
    z = F.pad(z, [(k + 1) // 2, (k - 2) // 2])
    return F.conv1d(z.unsqueeze(1), (f.flip(0) * 2).view(1, 1, -1)).squeeze(1)


def _downsample_1d(x: Tensor) -> Tensor:
    """(B, 2L + 4·MARGIN) -> (B, L): correlation with f, every other sample (the reference's ``downsample2d``
    along one axis, padding −2·MARGIN: one sample cropped per side)."""
    return F.conv1d(x[:, 1:-1].unsqueeze(1), _filter(x.dtype).view(1, 1, -1), stride=2).squeeze(1)


@cache
def _operators(size: int, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Along one axis of ``size`` pixels, as matrices: up (2(3·size − 2), size), reflect padding by size − 1
    then 2× upsampling; down (size, 2(size + 2·MARGIN)), 2× downsampling of the resampling canvas. The filters
    are separable, so an image Y is upsampled as up_H·Y·up_Wᵀ: dense products, far faster than 1-channel
    convolutions on the CPU (the same sums, in another order); built once per size, in float64."""
    eye = torch.eye(size, dtype=torch.float64)
    padded = F.pad(eye.unsqueeze(1), [size - 1, size - 1], mode="reflect").squeeze(1)  # row j: basis vector j
    up = _upsample_1d(padded).T
    down = _downsample_1d(torch.eye(2 * (size + 2 * MARGIN), dtype=torch.float64)).T
    return up.to(device=device, dtype=dtype), down.to(device=device, dtype=dtype)


def _separable(y: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """rows·Y·colsᵀ for every image Y of y (N, C, H, W), as two plain matrix products (a left product broadcast
    over the batch runs as many small ones, ten times slower on the CPU)."""
    return ((y @ cols.T).transpose(2, 3) @ rows.T).transpose(2, 3)


def _blits(g: Tensor, height: int, width: int) -> Tensor:
    """(N,) whether G⁻¹ maps pixel centres onto pixel centres: flips and quarter turns (entries 0 or ±1, exact
    from their tables) with whole-pixel shifts; a quarter turn of a non-square image needs H − W even."""
    a, t = g[:, :2, :2], g[:, :2, 2]
    turned = (a[:, 0, 1] != 0) & ((height - width) % 2 == 1)
    return ((a == 0) | (a.abs() == 1)).flatten(1).all(dim=1) & (t == torch.round(t)).all(dim=1) & ~turned


def _resample(y: Tensor, g: Tensor) -> Tensor:
    """y (N, C, H, W) sampled at G⁻¹ of each output pixel: reflect pad, 2× up, bilinear sample, 2× down; a
    pixel blit copied from the padded image; the identity passed through."""
    n, c, h, w = y.shape
    g = g.to(y.dtype)
    eye = _shift_on(0.0, y.device, y.dtype)  # the identity

    def scale(sx: float, sy: float) -> Tensor:
        return _scale_on(sx, sy, y.device, y.dtype)

    def shift(t: float) -> Tensor:
        return _shift_on(t, y.device, y.dtype)

    up_h, down_h = _operators(h, y.device, y.dtype)
    up_w, down_w = _operators(w, y.device, y.dtype)
    up = _separable(y, up_h, up_w)  # (N, C, 2(3H − 2), 2(3W − 2)): reflect-padded by size − 1, upsampled 2×
    out_h, out_w = 2 * (h + 2 * MARGIN), 2 * (w + 2 * MARGIN)
    # on the 2× canvas pixel j of the image lies at 2j: centred coordinate u = 2x − 0.5; then to the [-1, 1]
    # coordinates of affine_grid (align_corners=False) on the output canvas and on the upsampled image
    g_up = shift(-0.5) @ scale(2, 2) @ g @ scale(0.5, 0.5) @ shift(0.5)
    g_up = scale(2 / up.shape[3], 2 / up.shape[2]) @ g_up @ scale(out_w / 2, out_h / 2)
    grid = F.affine_grid(g_up[:, :2, :], [n, c, out_h, out_w], align_corners=False)
    sampled = F.grid_sample(up, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    sampled = _separable(sampled, down_h, down_w)
    # a blit at the image's own resolution: nearest samples land on pixel centres, so they copy exactly
    padded = F.pad(y, [w - 1, w - 1, h - 1, h - 1], mode="reflect")
    g_px = scale(2 / padded.shape[3], 2 / padded.shape[2]) @ g @ scale(w / 2, h / 2)
    grid = F.affine_grid(g_px[:, :2, :], [n, c, h, w], align_corners=False)
    blitted = F.grid_sample(padded, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    out = torch.where(_blits(g, h, w).view(n, 1, 1, 1), blitted, sampled)
    return torch.where((g != eye).flatten(1).any(dim=1).view(n, 1, 1, 1), out, y)


def _recolour(y: Tensor, c: Tensor) -> Tensor:
    """C applied to every pixel of y (N, 3 or 1, H, W)."""
    n, channels, h, w = y.shape
    c = c.to(y.dtype)
    flat = y.reshape(n, channels, h * w)
    if channels == 3:
        out = c[:, :3, :3] @ flat + c[:, :3, 3:]
    else:  # grey: the rows' mean, as the reference
        out = flat * (c[:, :3, :3].sum(dim=(1, 2)) / 3).view(n, 1, 1) + (c[:, :3, 3].sum(dim=1) / 3).view(n, 1, 1)
    return out.reshape(n, channels, h, w)


class AdaTransform:
    """One draw of the pipeline for a batch of ``shape``: ``geometry`` G⁻¹ (N, 3, 3), ``colour`` C (N, 4, 4) and
    the ``cutout`` masks (N, 1, H, W), None where no transform of that kind is enabled. ``T(y)`` applies them to any
    y of that shape, in its dtype (half precision is resampled in float32; autocast is off inside)."""

    def __init__(self, shape: tuple[int, ...], geometry: Tensor | None, colour: Tensor | None,
                 cutout: Tensor | None = None):
        self.shape, self.geometry, self.colour, self.cutout = shape, geometry, colour, cutout

    def __call__(self, y: Tensor) -> Tensor:
        if tuple(y.shape) != self.shape:
            raise ValueError(f"this draw is for a batch of shape {self.shape}, got {tuple(y.shape)}")
        work = y if y.dtype in (torch.float32, torch.float64) else y.float()
        # under mixed precision autocast would run the resampling products in bf16/fp16: errors of 0.5 measured
        with torch.autocast(y.device.type, enabled=False):
            if self.geometry is not None:
                work = _resample(work, self.geometry)
            if self.colour is not None:
                work = _recolour(work, self.colour)
            if self.cutout is not None:
                work = work * self.cutout.to(work.dtype)
        return work.to(y.dtype)


def draw_ada(x: Tensor, probability: Tensor | float, generator: torch.Generator | None = None,
             transforms: Mapping[str, float] | Iterable[str] = BGC) -> Transform:
    """ADA's transform T for a batch shaped like x (N, C, H, W), C = 1 or 3, its randomness drawn now:
    ``T(y)`` applies that same draw to any y of x's shape, differentiably in y.

    ``probability``: p, a 0-dim tensor (or a number) in [0, 1]. ``transforms``: the ones enabled, names from
    :data:`ALL` (multiplier 1) or {name: multiplier} (each acts with probability p·multiplier); the others are
    neither drawn nor applied (tests enable one at a time). ``generator``: the source of randomness (else the
    global RNG of x's device).
    """
    strengths = _strengths(transforms)
    if x.dim() != 4 or not x.is_floating_point() or x.shape[1] not in (1, 3):
        raise ConfigError(KEY, "bgc", "diffaug for this data",
                          f"ADA's bgc pipeline transforms floating-point RGB or grey images (N, 1 or 3, H, W), got "
                          f"{x.dtype} of shape {tuple(x.shape)}.")
    draws = _Draws(x, probability, generator)
    _, channels, height, width = x.shape
    with torch.autocast(x.device.type, enabled=False):  # the matrices in float32, under mixed precision too
        geometry = _draw_geometry(draws, strengths, height, width) if set(strengths) & set(GEOMETRIC) else None
        colour = _draw_colour(draws, strengths, channels) if set(strengths) & set(COLOR) else None
        cutout = _draw_cutout(draws, strengths, height, width) if "cutout" in strengths else None
    return AdaTransform(tuple(x.shape), geometry, colour, cutout)
