"""Jacobian-based truncation (Tanielian, Issenhuth, Dohmatob & Mary 2020, "Learning disconnected manifolds: a
no GAN's land"): G's samples filtered by how fast G moves at their latent (docs/science.md, "Jacobian-based
truncation").

A continuous G maps one connected latent space onto data that may sit on disconnected islands (the ring's 8
modes, the grid's 25): some latent mass must land between them. G keeps that mass small by crossing each gap
fast, so the samples in a gap are those where G's Jacobian is large. JBT draws ``n / eval.jbt.keep`` samples and
keeps the ``n`` with the smallest Frobenius norm ||J_G(z)||_F, estimated as the paper's reference code does, by
finite differences along random directions: for v ~ N(0, I), E‖J v‖² = ‖J‖_F², and
J v ≈ (G(z + δv) − G(z)) / δ, averaged over ``eval.jbt.probes`` directions (δ = ``eval.jbt.step``).

It needs no D, so it applies to any G with a Gaussian latent, packed or not. Unlike DRS it does not sample
p_data: it truncates p_g to where G is smooth, trading a little recall for precision. Chained with DRS
(both enabled: ``jbt_drs/``), DRS's proposal is JBT's survivors; since its critic still estimates p_data/p_g,
the result is p_data restricted to them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from omegaconf import DictConfig

from gan_lab.errors import ConfigError, check_int, check_range, known_keys


@dataclass(frozen=True)
class JBTSettings:
    """``eval.jbt.*``."""

    enabled: bool = False
    keep: float = 0.9  # fraction of G's samples kept: those of smallest Jacobian norm
    probes: int = 10  # random directions per sample in the estimate of ||J_G(z)||_F²
    step: float = 1e-3  # finite-difference step δ in latent space

    @classmethod
    def of(cls, node: DictConfig | dict | None) -> JBTSettings:
        """The settings of an ``eval.jbt`` node, each checked (a ConfigError names the bad key)."""
        s = cls(**known_keys("eval.jbt", node, cls))
        if not isinstance(s.enabled, bool):
            raise ConfigError("eval.jbt.enabled", s.enabled, "true or false")
        check_range("eval.jbt.keep", s.keep, 0.0, 1.0, low_open=True)
        check_int("eval.jbt.probes", s.probes, 1)
        check_range("eval.jbt.step", s.step, 0.0, 1.0, low_open=True)
        return s


def refusal(system) -> str | None:
    """Why JBT cannot truncate ``system``'s samples, or None: it needs one G of a latent z alone."""
    from gan_lab.systems.gan import GAN

    if type(system) is not GAN:
        return f"{type(system).__name__} has no single G of a latent z"
    if system.conditional != "none":
        return "a class-conditional G draws (sample, label) pairs"
    return None


def check(system, jbt: JBTSettings) -> None:
    """Refuse, with the key, a run whose samples JBT cannot truncate (before any training happens)."""
    why = refusal(system) if jbt.enabled else None
    if why:
        raise ConfigError("eval.jbt.enabled", True, "false for this run", f"Jacobian-based truncation: {why}.")


@torch.no_grad()
def jacobian_norms(system, z: torch.Tensor, jbt: JBTSettings, generator: torch.Generator,
                   chunk: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """(G(z), the estimate of ||J_G(z)||_F² per sample), in fp32 on the CPU. G draws as everywhere else (eval
    mode, the EMA copy when the run keeps one), outside any autocast: a bf16 difference at δ would be noise."""
    with torch.autocast(device_type=system.device.type, enabled=False):
        x = system.generate(z, batch_size=chunk)
        total = torch.zeros(len(z), dtype=torch.float64)
        for _ in range(jbt.probes):
            v = torch.randn(z.shape, generator=generator).to(z)
            moved = system.generate(z + jbt.step * v, batch_size=chunk)
            total += ((moved - x).flatten(1).double() ** 2).sum(1) / jbt.step ** 2
    return x, total / jbt.probes


def truncate(system, n: int, jbt: JBTSettings, generator: torch.Generator,
             chunk: int = 500) -> tuple[torch.Tensor, dict]:
    """n samples of G: the ``keep`` fraction of ⌈n / keep⌉ draws with the smallest Jacobian norm, and what it
    took (drawn, the largest kept and the median norm²)."""
    drawn = math.ceil(n / jbt.keep)
    x, norms = jacobian_norms(system, system.sample_z(drawn, generator).cpu(), jbt, generator, chunk)
    order = norms.argsort()[:n]
    return x[order], {"drawn": drawn, "acceptance_rate": n / drawn, "threshold": float(norms[order[-1]]),
                      "median_norm": float(norms.median())}


def proposal(system, jbt: JBTSettings, chunk: int = 500):
    """JBT as a proposal for DRS: ``draw(n, generator)`` gives n survivors of ⌈n / keep⌉ draws."""
    return lambda n, generator: truncate(system, n, jbt, generator, chunk)[0]
