"""Generators with a handful of parameters, for the classic experiments where G is known exactly.

``report()`` returns scalars the system logs as ``train/g/<name>`` (θ, its gradient, a, b …).
"""

from __future__ import annotations

from typing import Annotated

import torch
from torch import nn

from gan_lab.data.base import DataSpec
from gan_lab.errors import ConfigError
from gan_lab.nets.layers import DNorm, Widths, ZDim
from gan_lab.nets.mlp import MLPDiscriminator


class ParallelLineGenerator(nn.Module):
    """G(z) = (θ, Φ(z₀)): the line x = θ with a uniform second coordinate (Arjovsky 2017 ex. 1; EE807 lecture
    notes, docs/references.md).

    Φ is the standard normal CDF, so a Gaussian z gives Z ~ U[0, 1] exactly.
    """

    def __init__(self, theta: float):
        super().__init__()
        self.theta = nn.Parameter(torch.tensor(float(theta)))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        u = torch.special.ndtr(z[:, :1])  # (N, 1) uniform on [0, 1]
        return torch.cat([self.theta.expand_as(u), u], dim=1)

    def report(self) -> dict[str, torch.Tensor]:
        grad = self.theta.grad if self.theta.grad is not None else torch.zeros(())
        return {"theta": self.theta.detach(), "theta_grad": grad.detach()}


class AffineGenerator(nn.Module):
    """G(z) = b + a·z in 1-D: q = N(b, a²), a density the optimal-D picture can draw exactly."""

    def __init__(self, loc: float, scale: float):
        super().__init__()
        self.loc = nn.Parameter(torch.tensor(float(loc)))
        self.scale = nn.Parameter(torch.tensor(float(scale)))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.loc + self.scale * z[:, :1]

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return torch.distributions.Normal(self.loc.detach(), self.scale.detach().abs()).log_prob(x)

    def report(self) -> dict[str, torch.Tensor]:
        return {"loc": self.loc.detach(), "scale": self.scale.detach()}


def _shape_refusal(spec: DataSpec, shape: tuple[int, ...], model: str) -> ConfigError | None:
    if spec.shape != shape:
        return ConfigError("model", model, f"data of shape {shape}", f"dataset={spec.name} has shape {spec.shape}.")
    return None


def fits_parallel_lines(spec: DataSpec, **_) -> ConfigError | None:
    """The refusal of data that are not 2-D points (dataset=lines), or None."""
    return _shape_refusal(spec, (2,), "parallel_lines")


def fits_affine1d(spec: DataSpec, **_) -> ConfigError | None:
    """The refusal of data that are not 1-D points (dataset=gauss1d), or None."""
    return _shape_refusal(spec, (1,), "affine1d")


# this module holds two builders: each one's fits, by the builder's name (gan_lab.nets.fits_of reads it)
FITS = {"parallel_lines": fits_parallel_lines, "affine1d": fits_affine1d}

DHidden = Annotated[Widths, "D's hidden widths"]


def parallel_lines(spec: DataSpec, theta: Annotated[float, "where the generated line starts"] = 1.0,
                   hidden: DHidden = (64, 64), z_dim: ZDim = 1, d_norm: DNorm = "none") -> tuple[nn.Module, nn.Module]:
    """G(z) = (θ, Φ(z₀)) against an MLP critic, for 2-D points (:func:`fits_parallel_lines`)."""
    return ParallelLineGenerator(theta), MLPDiscriminator(spec.shape, list(hidden), d_norm)


def affine1d(spec: DataSpec, loc: Annotated[float, "b of G(z) = b + a·z"] = 2.0,
             scale: Annotated[float, "a of G(z) = b + a·z"] = 0.5, hidden: DHidden = (64, 64), z_dim: ZDim = 1,
             d_norm: DNorm = "none") -> tuple[nn.Module, nn.Module]:
    """G(z) = b + a·z against an MLP D, for 1-D points (:func:`fits_affine1d`)."""
    return AffineGenerator(loc, scale), MLPDiscriminator(spec.shape, list(hidden), d_norm)
