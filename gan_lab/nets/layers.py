"""Small building blocks shared by the architectures."""

from __future__ import annotations

from torch import nn

from gan_lab.data.base import DataSpec
from gan_lab.errors import ConfigError, check_choice

NORMS = ("batch", "layer", "none")


def square_side(spec: DataSpec, model: str, what: str) -> int:
    """The side H of the data's square images (C, H, H), else a ConfigError naming ``model``."""
    if not spec.is_image or len(spec.shape) != 3 or spec.shape[1] != spec.shape[2]:
        raise ConfigError("model", model, "a model that fits the data's shape",
                          f"{what} needs square images (C, H, H); dataset={spec.name} has shape "
                          f"{spec.shape}. Use model=mlp for point data.")
    return spec.shape[1]


def halve(side: int, min_base: int = 4) -> tuple[int, int]:
    """(b, n) with side = b·2ⁿ, halving while the side is even and its half stays ≥ ``min_base``."""
    n = 0
    while side % 2 == 0 and side // 2 >= min_base:
        side, n = side // 2, n + 1
    return side, n


def norm_layer(kind: str, channels: int, spatial: bool, key: str = "model.d_norm") -> nn.Module:
    """Normalisation for ``channels`` features. "layer" on feature maps normalises over (C, H, W)
    per sample (GroupNorm with one group), which keeps a critic's output per-sample as WGAN-GP needs.
    """
    check_choice(key, kind, NORMS)
    if kind == "batch":
        return nn.BatchNorm2d(channels) if spatial else nn.BatchNorm1d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels) if spatial else nn.LayerNorm(channels)
    return nn.Identity()


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
