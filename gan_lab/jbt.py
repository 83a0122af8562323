"""Jacobian-based truncation (Tanielian, Issenhuth, Dohmatob & Mary 2020, "Learning disconnected manifolds: a
no GAN's land"): G's samples filtered by how fast G moves at their latent (docs/science.md, "Jacobian-based
truncation").

A continuous G maps one connected latent space onto data that may sit on disconnected islands (the ring's 8
modes, the grid's 25): some latent mass must land between them. G keeps that mass small by crossing each gap
fast, so the samples in a gap are those where G's Jacobian is large. JBT draws ``n / eval.jbt.keep`` samples and
keeps the ``n`` with the smallest Frobenius norm ||J_G(z)||_F. When the latent has at most ``eval.jbt.probes``
dimensions the norm is exact: ‖J‖_F² = Σ_i ‖J e_i‖², one forward-mode product (JVP) per latent dimension.
Otherwise it is estimated by finite differences along random directions: for v ~ N(0, I), E‖J v‖² = ‖J‖_F²,
and J v ≈ (G(z + δv) − G(z)) / δ, averaged over ``eval.jbt.probes`` directions (δ = ``eval.jbt.step``; the
latent moves by δ‖v‖ ≈ δ·√dim z).

It needs no D, so it applies to any G of a latent alone, packed or not. Unlike DRS it does not sample p_data: it
truncates p_g to where G is smooth, trading recall (the data's own tails go too) for precision. Chained with DRS
(both enabled: ``jbt_drs/``), DRS's proposal is JBT's survivors while its critic still estimates p_data/p_g, so
the result is p_data weighted by w(x), the chance that a latent giving x survives JBT (nearly 1 on the modes,
nearly 0 on the bridges; JBT's threshold is set per proposal batch).
"""

from __future__ import annotations

import math

import torch

from gan_lab.settings import JBT


@torch.no_grad()
def jacobian_norms(system, z: torch.Tensor, jbt: JBT, generator: torch.Generator,
                   chunk: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """(G(z), ||J_G(z)||_F² per sample: exact for a latent of at most ``jbt.probes`` dimensions, else the
    random-direction estimate), on the CPU, ``chunk`` latents at a time. G draws as everywhere else (eval mode,
    the EMA copy when the run keeps one), outside any autocast: a bf16 difference at δ would be noise."""
    samples, norms = [], []
    draw = lambda q: system.generate(q, batch_size=chunk)  # noqa: E731
    with torch.autocast(device_type=system.device.type, enabled=False):
        for part in z.split(chunk):
            x = draw(part)
            total = torch.zeros(len(part), dtype=torch.float64)
            if part.shape[1] <= jbt.probes:  # exact: Σ_i ‖J e_i‖², J e_i by forward-mode AD
                for i in range(part.shape[1]):
                    basis = torch.zeros_like(part)
                    basis[:, i] = 1.0
                    total += (torch.func.jvp(draw, (part,), (basis,))[1].flatten(1).double() ** 2).sum(1)
                norms.append(total)
            else:
                for _ in range(jbt.probes):
                    v = torch.randn(part.shape, generator=generator).to(part)
                    moved = draw(part + jbt.step * v)
                    total += ((moved - x).flatten(1).double() ** 2).sum(1) / jbt.step ** 2
                norms.append(total / jbt.probes)
            samples.append(x)
    return torch.cat(samples), torch.cat(norms)


def truncate(system, n: int, jbt: JBT, generator: torch.Generator,
             chunk: int = 500) -> tuple[torch.Tensor, dict]:
    """n samples of G: the ``keep`` fraction of ⌈n / keep⌉ draws with the smallest Jacobian norm, and what it
    took (drawn, the acceptance rate, the largest kept and the median norm²)."""
    drawn = math.ceil(n / jbt.keep)
    x, norms = jacobian_norms(system, system.sample_z(drawn, generator).cpu(), jbt, generator, chunk)
    order = norms.argsort()[:n]
    return x[order], {"drawn": drawn, "acceptance_rate": n / drawn, "threshold": float(norms[order[-1]]),
                      "median_norm": float(norms.median())}


def proposal(system, jbt: JBT, chunk: int = 500):
    """JBT as a proposal for DRS: ``draw(n, generator)`` gives n survivors of ⌈n / keep⌉ draws."""
    return lambda n, generator: truncate(system, n, jbt, generator, chunk)[0]
