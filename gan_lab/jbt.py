"""Jacobian-based truncation (Tanielian, Issenhuth, Dohmatob & Mary 2020, "Learning disconnected manifolds: a
no GAN's land"): G's samples filtered by how fast G moves at their latent (docs/science.md, "Jacobian-based
truncation").

A continuous G maps one connected latent space onto data that may sit on disconnected islands (the ring's 8
modes, the grid's 25): some latent mass must land between them. G keeps that mass small by crossing each gap
fast, so the samples in a gap are those where G's Jacobian is large. JBT draws ``n / eval.jbt.keep`` samples and
keeps the ``n`` with the smallest Frobenius norm ||J_G(z)||_F, estimated by finite differences along random
directions: for v ~ N(0, I), E‖J v‖² = ‖J‖_F², and J v ≈ (G(z + δv) − G(z)) / δ, averaged over
``eval.jbt.probes`` directions (δ = ``eval.jbt.step``; the latent moves by δ‖v‖ ≈ δ·√dim z).

It needs no D, so it applies to any G of a latent alone, packed or not. Unlike DRS it does not sample p_data: it
truncates p_g to where G is smooth, trading recall (the data's own tails go too) for precision. Chained with DRS
(both enabled: ``jbt_drs/``), DRS's proposal is JBT's survivors while its critic still estimates p_data/p_g, so
the result is p_data weighted by w(x), the chance that a latent giving x survives JBT (nearly 1 on the modes,
nearly 0 on the bridges; JBT's threshold is set per proposal batch).
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


HALF_TRUE = ("16-true", "bf16-true")  # weights in half precision: a step of 1e-3 is below their resolution


def refusal(system, precision: str = "32-true") -> str | None:
    """Why JBT cannot truncate ``system``'s samples, or None: it needs one G of a latent z alone, in fp32."""
    from gan_lab.systems.lapgan import LAPGAN
    from gan_lab.systems.mixture import MixtureGAN

    if isinstance(system, LAPGAN):
        return "LAPGAN's samples also depend on the noise drawn at each level, not on z alone"
    if isinstance(system, MixtureGAN):
        return "MixtureGAN picks the member that draws each sample apart from z"
    if system.conditional != "none":
        return "a class-conditional G draws (sample, label) pairs"
    if str(precision) in HALF_TRUE:
        return (f"with trainer.precision={precision} G's weights are half precision, too coarse for its finite "
                "differences (a -mixed precision keeps them fp32)")
    return None


def check(system, jbt: JBTSettings, precision: str = "32-true") -> None:
    """Refuse, with the key, a run whose samples JBT cannot truncate (before any training happens)."""
    why = refusal(system, precision) if jbt.enabled else None
    if why:
        raise ConfigError("eval.jbt.enabled", True, "false for this run", f"Jacobian-based truncation: {why}.")


@torch.no_grad()
def jacobian_norms(system, z: torch.Tensor, jbt: JBTSettings, generator: torch.Generator,
                   chunk: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """(G(z), the estimate of ||J_G(z)||_F² per sample), on the CPU, ``chunk`` latents at a time. G draws as
    everywhere else (eval mode, the EMA copy when the run keeps one), outside any autocast: a bf16 difference at
    δ would be noise."""
    samples, norms = [], []
    with torch.autocast(device_type=system.device.type, enabled=False):
        for part in z.split(chunk):
            x = system.generate(part, batch_size=chunk)
            total = torch.zeros(len(part), dtype=torch.float64)
            for _ in range(jbt.probes):
                v = torch.randn(part.shape, generator=generator).to(part)
                moved = system.generate(part + jbt.step * v, batch_size=chunk)
                total += ((moved - x).flatten(1).double() ** 2).sum(1) / jbt.step ** 2
            samples.append(x)
            norms.append(total / jbt.probes)
    return torch.cat(samples), torch.cat(norms)


def truncate(system, n: int, jbt: JBTSettings, generator: torch.Generator,
             chunk: int = 500) -> tuple[torch.Tensor, dict]:
    """n samples of G: the ``keep`` fraction of ⌈n / keep⌉ draws with the smallest Jacobian norm, and what it
    took (drawn, the acceptance rate, the largest kept and the median norm²)."""
    drawn = math.ceil(n / jbt.keep)
    x, norms = jacobian_norms(system, system.sample_z(drawn, generator).cpu(), jbt, generator, chunk)
    order = norms.argsort()[:n]
    return x[order], {"drawn": drawn, "acceptance_rate": n / drawn, "threshold": float(norms[order[-1]]),
                      "median_norm": float(norms.median())}


def proposal(system, jbt: JBTSettings, chunk: int = 500):
    """JBT as a proposal for DRS: ``draw(n, generator)`` gives n survivors of ⌈n / keep⌉ draws."""
    return lambda n, generator: truncate(system, n, jbt, generator, chunk)[0]
