"""Differentiable image augmentations, a neutral module: DiffAugment's transforms (Zhao et al. 2020,
"Differentiable Augmentation for Data-Efficient GAN Training"), used by the DiffAugment/ADA trick
(gan_lab/tricks/diffaug.py) and by consistency regularization (gan_lab/regularizers/cr.py).

The policy is an ordered subset of three transforms, matching the reference implementation
(mit-han-lab/data-efficient-gans, DiffAugment_pytorch.py); images are NCHW in [-1, 1]:

* ``color``: per sample, brightness x + b with b ~ U(-0.5, 0.5); then saturation
  m_c + (x - m_c)·s with m_c the mean over channels (per pixel) and s ~ U(0, 2); then contrast
  m + (x - m)·c with m the mean over (C, H, W) and c ~ U(0.5, 1.5). With one channel saturation is the identity.
* ``translation``: per sample an integer shift (t_x, t_y), each uniform on {-r, ..., r} with
  r = int(size/8 + 0.5) for that axis; pixels shifted out are dropped, vacated ones filled with 0.
* ``cutout``: per sample a zero rectangle of side s = int(size/2 + 0.5) per axis, its centre o uniform on
  {0, ..., size - (s mod 2)} and its top-left corner at o - s//2; the part outside the image is clipped.

All transforms are vectorised over the batch (no Python loop over samples), preserve dtype and device, and
are differentiable w.r.t. x (translation is a gather, cutout a multiplicative mask, colour affine maps).
Random draws are made in float32 (then cast), on the generator's device when one is given (a
``torch.Generator`` is device-specific) and on x's device otherwise, then moved to x's device.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from gan_lab.errors import ConfigError

KEY = "tricks.diffaug"
POLICIES = ("color", "translation", "cutout")
ALLOWED = "a comma-separated subset of " + ", ".join(POLICIES)
TRANSLATION_RATIO = 0.125  # largest shift as a fraction of the image size (reference: 1/8)
CUTOUT_RATIO = 0.5  # cutout side as a fraction of the image size (reference: 1/2)


def parse_policy(value: Any, key: str = KEY) -> tuple[str, ...]:
    """Return the policy as a tuple of transform names, in order; "" / None / [] is the empty policy.

    Accepts a comma-separated string ("color,translation,cutout", whitespace ignored) or a sequence of names
    (a list, tuple or OmegaConf ListConfig). Unknown or repeated names raise a ConfigError naming ``key``, the
    setting the policy came from.
    """
    if value is None:
        return ()
    if isinstance(value, str):
        names = [part.strip() for part in value.split(",")]
        names = [name for name in names if name]
    else:
        try:
            names = list(value)
        except TypeError:
            raise ConfigError(key, value, ALLOWED) from None
        if not all(isinstance(name, str) for name in names):
            raise ConfigError(key, value, ALLOWED)
        names = [name.strip() for name in names]
    unknown = [name for name in names if name not in POLICIES]
    if unknown:
        raise ConfigError(key, value, ALLOWED, f"Unknown transform(s): {', '.join(map(repr, unknown))}.")
    if len(set(names)) != len(names):
        raise ConfigError(key, value, ALLOWED, "Each transform may appear at most once.")
    return tuple(names)


# --- the transforms with their randomness given (exact, testable) ---------------------------------------------

def _per_sample(values: Tensor, x: Tensor) -> Tensor:
    """(N,) values as an (N, 1, 1, 1) tensor on x's device and dtype, to broadcast over C, H, W."""
    return values.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)


def _brightness(x: Tensor, shift: Tensor) -> Tensor:
    """x + b, one b per sample (``shift`` has shape (N,))."""
    return x + _per_sample(shift, x)


def _saturation(x: Tensor, factor: Tensor) -> Tensor:
    """m_c + (x - m_c)·s, m_c the per-pixel mean over channels, one s per sample (``factor``: (N,))."""
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * _per_sample(factor, x) + mean


def _contrast(x: Tensor, factor: Tensor) -> Tensor:
    """m + (x - m)·c, m the per-sample mean over (C, H, W), one c per sample (``factor``: (N,))."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * _per_sample(factor, x) + mean


def _translate(x: Tensor, shift_x: Tensor, shift_y: Tensor) -> Tensor:
    """Shift each image by integers: out[n, :, i, j] = x[n, :, i - t_y[n], j - t_x[n]], 0 where that is off the image.

    ``shift_x`` (N,) moves content right (along W) when positive, ``shift_y`` (N,) moves it down (along H).
    Implemented as one gather from x padded with a one-pixel zero border, source indices clamped onto that border.
    """
    n, _, h, w = x.shape
    shift_x = shift_x.to(device=x.device, dtype=torch.long).view(n, 1)
    shift_y = shift_y.to(device=x.device, dtype=torch.long).view(n, 1)
    rows = (torch.arange(h, device=x.device).view(1, h) - shift_y + 1).clamp(0, h + 1)  # (N, H) into padded rows
    cols = (torch.arange(w, device=x.device).view(1, w) - shift_x + 1).clamp(0, w + 1)  # (N, W) into padded cols
    padded = F.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)  # (N, H+2, W+2, C): zero border
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    return padded[batch, rows.view(n, h, 1), cols.view(n, 1, w)].permute(0, 3, 1, 2)


def _cutout(x: Tensor, top: Tensor, left: Tensor, height: int, width: int) -> Tensor:
    """Zero rows [top, top + height) × cols [left, left + width) of each image (all channels), clipped to the image.

    ``top`` and ``left`` are (N,) integers and may lie off the image; x is multiplied by a 0/1 mask.
    """
    n, _, h, w = x.shape
    top = top.to(device=x.device, dtype=torch.long).view(n, 1)
    left = left.to(device=x.device, dtype=torch.long).view(n, 1)
    rows, cols = torch.arange(h, device=x.device).view(1, h), torch.arange(w, device=x.device).view(1, w)
    in_rows = (rows >= top) & (rows < top + height)  # (N, H)
    in_cols = (cols >= left) & (cols < left + width)  # (N, W)
    cut = in_rows.view(n, 1, h, 1) & in_cols.view(n, 1, 1, w)
    return x * (~cut).to(x.dtype)


# --- the random transforms ----------------------------------------------------------------------------------------

def _rand(n: int, x: Tensor, generator: torch.Generator | None) -> Tensor:
    """n draws of U(0, 1) in float32, on the generator's device (x's without one), returned on x's device."""
    device = generator.device if generator is not None else x.device
    return torch.rand(n, generator=generator, device=device).to(x.device)


def _randint(low: int, high: int, n: int, x: Tensor, generator: torch.Generator | None) -> Tensor:
    """n integers uniform on {low, ..., high - 1}, drawn like :func:`_rand`."""
    device = generator.device if generator is not None else x.device
    return torch.randint(low, high, (n,), generator=generator, device=device).to(x.device)


# Each draw takes its randomness for a batch shaped like x and returns the transform with it fixed, so one draw
# can act on several tensors (R1 differentiates D(T(x)) with respect to x; LAPGAN augments a level and its
# condition together). Draws come in the order the transforms are listed, so T(x) is what drawing while
# transforming gave.
Transform = Callable[[Tensor], Tensor]


def _draw_color(x: Tensor, generator: torch.Generator | None) -> Transform:
    n = x.shape[0]
    b = _rand(n, x, generator) - 0.5  # b ~ U(-0.5, 0.5)
    s = _rand(n, x, generator) * 2.0  # s ~ U(0, 2)
    c = _rand(n, x, generator) + 0.5  # c ~ U(0.5, 1.5)
    return lambda y: _contrast(_saturation(_brightness(y, b), s), c)


def _max_shift(size: int) -> int:
    """r = int(size·1/8 + 0.5), the reference's rounding."""
    return int(size * TRANSLATION_RATIO + 0.5)


def _draw_translation(x: Tensor, generator: torch.Generator | None) -> Transform:
    n, _, h, w = x.shape
    ry, rx = _max_shift(h), _max_shift(w)
    shift_y = _randint(-ry, ry + 1, n, x, generator)  # the reference draws the H axis first
    shift_x = _randint(-rx, rx + 1, n, x, generator)
    return lambda y: _translate(y, shift_x, shift_y)


def _cutout_size(size: int) -> int:
    """s = int(size·1/2 + 0.5), the reference's rounding."""
    return int(size * CUTOUT_RATIO + 0.5)


def _draw_cutout(x: Tensor, generator: torch.Generator | None) -> Transform:
    n, _, h, w = x.shape
    sh, sw = _cutout_size(h), _cutout_size(w)
    centre_y = _randint(0, h + (1 - sh % 2), n, x, generator)  # reference: offset in [0, size + (1 - s mod 2))
    centre_x = _randint(0, w + (1 - sw % 2), n, x, generator)
    return lambda y: _cutout(y, centre_y - sh // 2, centre_x - sw // 2, sh, sw)


_DRAWS = {"color": _draw_color, "translation": _draw_translation, "cutout": _draw_cutout}


def draw_augment(x: Tensor, policy: str | Sequence[str], generator: torch.Generator | None = None,
                 probability: Tensor | None = None) -> Transform:
    """The policy's transform T for a batch shaped like x (N, C, H, W), its randomness drawn now: ``T(y)``
    applies that same draw to any y of x's shape. ``diff_augment(x, …)`` is ``draw_augment(x, …)(x)``."""
    names = parse_policy(policy)
    if not names:
        return lambda y: y
    if x.dim() != 4:
        raise ConfigError(KEY, ",".join(names), "empty for this data",
                          f"DiffAugment transforms images: it needs a 4-D (N, C, H, W) batch, got shape "
                          f"{tuple(x.shape)}.")
    if not x.is_floating_point():
        raise ConfigError(KEY, ",".join(names), "empty for this data",
                          f"DiffAugment needs floating-point images in [-1, 1], got {x.dtype}.")
    steps = []
    for name in names:  # with a probability, the draw that decides comes first, then the transform's own
        keep = None if probability is None else (_rand(x.shape[0], x, generator) >= probability).view(-1, 1, 1, 1)
        steps.append((keep, _DRAWS[name](x, generator)))

    def transform(y: Tensor) -> Tensor:
        for keep, t in steps:
            y = t(y) if keep is None else torch.where(keep, y, t(y))
        return y

    return transform


def diff_augment(x: Tensor, policy: str | Sequence[str], generator: torch.Generator | None = None,
                 probability: Tensor | None = None) -> Tensor:
    """Apply the policy's transforms to a batch of images x (N, C, H, W), in the order listed; T in D(T(·)).

    Call it on every input of D, real and fake, in D's and G's steps. An empty policy returns x itself.
    Randomness is drawn per sample, from ``generator`` if given (else the global RNG of x's device).
    ``probability`` (a 0-dim tensor p, ADA): each transform acts on each sample with probability p, else
    the sample passes through it unchanged; None: always.
    """
    return draw_augment(x, policy, generator, probability)(x)
