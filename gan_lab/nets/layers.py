"""Small building blocks shared by the architectures, and the setting types their builders share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

from torch import nn

from gan_lab.checks import Validator, at_least
from gan_lab.data.base import DataSpec
from gan_lab.data.images import PADDED_SETS
from gan_lab.errors import ConfigError

NORMS = ("batch", "layer", "none")

# ---------------------------------------------------------------- setting types of the builders' signatures

ZDim = Annotated[int, at_least(1), "dimensions of G's latent z"]
Width = Annotated[int, at_least(1)]
DNorm = Annotated[Literal["batch", "layer", "none", "auto"],
                  "D's normalisation: batch | layer | none | auto (the regularizer's preference: batch; layer with "
                  "gp, none with r1/sn)"]


def widths_ok(value) -> bool:
    """A non-empty list of layer widths, each an integer ≥ 1."""
    return len(value) > 0 and all(isinstance(h, int) and not isinstance(h, bool) and h >= 1 for h in value)


Widths = Annotated[Sequence[int], Validator(widths_ok, "a non-empty list of positive layer widths")]


# ---------------------------------------------------------------- the data's shape


def square_side(spec: DataSpec) -> int | None:
    """The side H of the data's square images (C, H, H), or None when the data are not square images."""
    if not spec.is_image or len(spec.shape) != 3 or spec.shape[1] != spec.shape[2]:
        return None
    return spec.shape[1]


def not_square(spec: DataSpec, model: str, what: str) -> ConfigError | None:
    """The refusal of ``model`` (``what`` in words) for data that are not square images (C, H, H), or None."""
    if square_side(spec) is not None:
        return None
    return ConfigError("model", model, "a model that fits the data's shape",
                       f"{what} needs square images (C, H, H); dataset={spec.name} has shape "
                       f"{spec.shape}. Use model=mlp for point data.")


def not_power_of_two(spec: DataSpec, model: str, what: str) -> ConfigError | None:
    """The refusal of data that are not square images whose side is a power of two ≥ 8 (StyleGAN2's and R3GAN's
    nets; ``what``: the model in words), naming how to get such images, or None."""
    refusal = not_square(spec, model, what)
    if refusal is not None:
        return refusal
    side = spec.shape[1]
    if side >= 8 and not side & (side - 1):
        return None
    how = ("dataset.pad_to=32 pads each image with black to 32 px" if spec.name in PADDED_SETS else
           "python -m gan_lab.dataset_tool --pad-to or --resolution writes a set of such a side (dataset=zip), and "
           "dataset.size resizes where the set has one (celeba, folder)")
    return ConfigError("model", model, "square images whose side is a power of two >= 8 (8, 16, 32, 64, …)",
                       f"dataset={spec.name} has side {side}: {how}.")


def halve(side: int, min_base: int = 4) -> tuple[int, int]:
    """(b, n) with side = b·2ⁿ, halving while the side is even and its half stays ≥ ``min_base``."""
    n = 0
    while side % 2 == 0 and side // 2 >= min_base:
        side, n = side // 2, n + 1
    return side, n


def norm_layer(kind: str, channels: int, spatial: bool) -> nn.Module:
    """Normalisation for ``channels`` features (``kind``: batch | layer | none, the setting already checked).
    "layer" on feature maps normalises over (C, H, W) per sample (GroupNorm with one group), which keeps a
    critic's output per-sample as WGAN-GP needs.
    """
    if kind == "batch":
        return nn.BatchNorm2d(channels) if spatial else nn.BatchNorm1d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels) if spatial else nn.LayerNorm(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm_layer: unknown normalisation {kind!r} (one of {', '.join(NORMS)})")


def dcgan_init(module: nn.Module) -> None:
    """DCGAN's initialisation (Radford 2016): conv weights N(0, 0.02), norm scales N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)):
            if m.weight is not None:
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)
