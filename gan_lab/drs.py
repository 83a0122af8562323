"""Discriminator Rejection Sampling (Azadi, Olsson, Darrell, Goodfellow & Odena 2019): G's samples filtered by
the density ratio its D estimates (docs/science.md, "Discriminator rejection sampling").

For the logistic loss the optimal D's logit is D̃*(x) = log p_data(x)/p_g(x) (Goodfellow 2014, Prop. 1), so
accepting a sample of G with probability p_data/(M·p_g) = exp(D̃*(x) − D̃*_M), D̃*_M the largest logit, leaves
exactly p_data: rejection sampling with G as the proposal (gan_lab/filters.py also gives it JBT's survivors of
G's samples as the proposal). The paper's Algorithm 1, as run here:

1. keep training D (a copy: the run's D stays as trained) against the final, frozen sampler G with the logistic
   loss, whatever loss trained it (only that loss makes the logit a log density ratio), with the run's D
   optimiser as configured (a fresh one at its initial learning rate, whatever schedule the run had) and its
   batch size (``eval.drs.calibration_steps``);
2. burn-in: D̃_M is the largest logit over ``eval.drs.burn_in`` samples, raised whenever a larger one appears;
3. each sample x is accepted with probability σ(F(x)),
   F(x) = D̃(x) − D̃_M − log(1 − exp(D̃(x) − D̃_M − ε)) − γ, ε = 1e-6.
   With γ = 0, σ(F) = exp(D̃(x) − D̃_M) (up to ε): the exact rule (``eval.drs.gamma_quantile: null``). γ shifts
   every acceptance log-odds: the paper sets it per batch from a high percentile of F, so that the batch's top
   samples (by F) are accepted with probability above one half whatever D̃_M is; ``gamma_quantile=q`` sets γ to
   the q-quantile of F over each batch. That no longer samples p_data exactly: it is more selective where the
   exact rule accepts nearly everything, less where it rejects nearly everything.

An outlying D̃_M makes the exact rule slow, not wrong: sampling gives up (:class:`LowAcceptance`, the run stays
finished) after ``eval.drs.max_draws`` draws, by default 1,000 per sample needed for points and 50 for images.

D judges the samples as it did in training: in train mode, fakes in batches of the run's batch size, the raw
samples (no augmentation or instance noise). The measurement is opt-in (``eval.drs.enabled``) and separate from
the run's own (gan_lab/filters.py): the same metrics of the accepted samples, under ``drs/`` in metrics.json, with
the acceptance rate; ``drs_scatter.png`` shows them for 2-D data.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from gan_lab.settings import DRS

Proposal = Callable[[int, torch.Generator], torch.Tensor]  # draw(n, generator): n samples, on the CPU

EPSILON = 1e-6
MIN_ACCEPTANCE = 0.02  # below this, sampling stops: n samples would take more than 50·n draws
DRAWS_PER_SAMPLE = {"image": 50, "points": 1000}  # eval.drs.max_draws=null: draws allowed per sample needed


class LowAcceptance(RuntimeError):
    """DRS accepted too few samples to measure (a D̃_M far above most logits: an undertrained run, or a D that
    separates G's samples from the data almost perfectly)."""


def calibrate(system, source, steps: int, batch_size: int, generator: torch.Generator) -> torch.nn.Module:
    """A copy of D trained ``steps`` more updates with the logistic loss against the frozen sampler G."""
    critic = copy.deepcopy(system.discriminator).train()
    critic.requires_grad_(True)
    if steps == 0:
        return critic
    optimizer = system.optimizer_factories[0](critic.parameters())
    sampler, device = system.sampler, system.device
    was_training = sampler.training
    sampler.eval()
    try:
        for _ in range(steps):
            real = source.sample(batch_size, generator).to(device)
            with torch.no_grad():
                fake = sampler(system.sample_z(batch_size, generator))
            loss = F.softplus(-critic(real).float()).mean() + F.softplus(critic(fake).float()).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    finally:
        sampler.train(was_training)
    return critic


def own_samples(system, chunk: int = 512) -> Proposal:
    """G's own samples as DRS's proposal: ``draw(n, generator)``."""
    return lambda n, generator: system.generate(system.sample_z(n, generator).cpu(), batch_size=chunk)


@torch.no_grad()
def _judged(system, critic, draw: Proposal, n: int, generator: torch.Generator,
            chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n samples of the proposal and D's logits of them, judged ``chunk`` at a time (the run's batch size: a
    batch-norm D in train mode sees batches of fakes the size it saw in training)."""
    fake = draw(n, generator)
    logits = [critic(part.to(system.device)).float().reshape(-1).cpu() for part in fake.split(chunk)]
    return fake, torch.cat(logits)


def acceptance(logits: torch.Tensor, top: float, gamma_quantile: float | None) -> torch.Tensor:
    """σ(F(x)) for each logit D̃(x) given D̃_M = ``top`` (at least every logit), γ from ``gamma_quantile``."""
    d = logits.double() - top
    f = d - torch.log1p(-torch.exp(d - EPSILON))
    gamma = 0.0 if gamma_quantile is None else float(torch.quantile(f, gamma_quantile))
    return torch.sigmoid(f - gamma)


def rejection_sample(system, critic, n: int, drs: DRS, generator: torch.Generator,
                     max_draws: int | None = None, chunk: int = 512,
                     draw: Proposal | None = None) -> tuple[torch.Tensor, dict]:
    """n samples of the proposal (``draw``; default G's own samples) accepted by DRS with ``critic``, and what it
    took (drawn, acceptance rate, D̃_M). Raises :class:`LowAcceptance` when fewer than n are accepted in
    ``max_draws`` draws (default: as many as an acceptance rate of ``MIN_ACCEPTANCE`` needs). D judges ``chunk``
    samples at a time."""
    max_draws = max_draws or math.ceil(n / MIN_ACCEPTANCE)
    draw = draw or own_samples(system, chunk)
    _, burn = _judged(system, critic, draw, drs.burn_in, generator, chunk)
    top = float(burn.max())
    kept, accepted, drawn = [], 0, 0
    while accepted < n:
        if drawn >= max_draws:
            raise LowAcceptance(f"DRS accepted {accepted} of {drawn} samples ({accepted / drawn:.2%}), fewer than the "
                                f"{n} it needs within {max_draws} draws (eval.drs.max_draws); "
                                "eval.drs.gamma_quantile (e.g. 0.95) accepts more")
        fake, logits = _judged(system, critic, draw, drs.batch, generator, chunk)
        drawn += len(logits)
        top = max(top, float(logits.max()))
        keep = torch.rand(len(logits), generator=generator, dtype=torch.float64) < acceptance(
            logits, top, drs.gamma_quantile)
        kept.append(fake[keep])
        accepted += int(keep.sum())
    return torch.cat(kept)[:n], {"drawn": drawn, "acceptance_rate": accepted / drawn, "max_logit": top}


def describe(drs: DRS, n: int, drawn: int | str) -> str:
    """The protocol in words, for ``n`` samples accepted of ``drawn``."""
    gamma = ("γ = 0 (exact rule)" if drs.gamma_quantile is None
             else f"γ = the {drs.gamma_quantile} quantile of F per batch")
    return (f"Discriminator rejection sampling (Azadi 2019): D trained {drs.calibration_steps} more updates "
            f"against the final G (logistic loss), burn-in {drs.burn_in}, {gamma}; {n} accepted of {drawn} drawn")


def select(system, source, drs: DRS, n: int, generator: torch.Generator, batch: int,
           draw: Proposal | None = None) -> tuple[torch.Tensor, dict, str]:
    """n samples DRS accepts (from ``draw``, default G's own), what it took, and the protocol in words: a copy of
    D calibrated against G, then rejection sampling. Raises :class:`LowAcceptance` when too few are accepted."""
    critic = calibrate(system, source, drs.calibration_steps, batch, generator)
    max_draws = drs.max_draws or n * DRAWS_PER_SAMPLE["image" if source.spec.is_image else "points"]
    fake, stats = rejection_sample(system, critic, n, drs, generator, max_draws, batch, draw)
    protocol = describe(drs, n, stats["drawn"])
    block = {"calibration_steps": drs.calibration_steps, "gamma_quantile": drs.gamma_quantile}
    return fake, {**stats, "block": block}, protocol
