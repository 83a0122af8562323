"""LAPGAN (Denton 2015; the LAMBDA lecture notes, docs/references.md): Algorithm 1 run on every level of a
Laplacian pyramid at once.

As in the paper, the levels train independently on *real* pyramids. Each D update builds the pyramid of
its real minibatch (gan_lab/nets/lapgan.py) and, for every level k < K, judges the real residual h_k
against G_k(z_k, up(I_{k+1})) — both given the same real condition up(I_{k+1}) — and, at the coarsest
level, the real I_K against G_K(z_K). The G update does likewise. The per-level losses are summed:
the level networks share no parameter, so each level's D and G get exactly their own level's gradient,
and one optimiser per player (over all levels) does K+1 independent updates.

Only the steps differ from :class:`GAN` (its ``training_step`` chunks the k real minibatches and calls
them); sampling runs the chain coarse to fine inside the generator's ``forward``, so ``generate``,
the sample grids, samples.npy and the metrics see full-size images. At the end of a run
:meth:`LAPGAN.final_pictures` draws ``lapgan_chain.png``: every level of a few sampling chains and the residuals
added between them.

With DiffAugment, D_k judges the pair as the level image it stands for: one draw T per level and D step,
applied to the image and to its condition, T(c + h) − T(c) given T(c), for the real and the fake residual
alike, so both still meet one condition (:meth:`LAPGAN.level_view`; docs/science.md, "Techniques"). Instance
noise is refused: drawn once for the pair it cancels in T(c + h) − T(c).

Regularizers act per level: ``after_d_step`` (weight clipping) on the whole discriminator, i.e. every
level's D; a penalty (gp, r1) on each level's D as a function of what it judges (h_k, with the condition
held fixed, or I_K), summed over levels. Logged: ``train/d_loss`` and ``train/g_loss`` (sums over
levels), ``train/d_real``/``d_fake`` (means over levels), loss estimates (sums: for f-divergences the
coarse term plus the conditional ones is the chain rule of the whole pyramid's divergence), and each
level's own numbers as ``train/level{k}/…`` (k = 0 the finest, K the coarsest).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from gan_lab.capabilities import HOOKS, SystemCaps
from gan_lab.nets.lapgan import LaplacianGenerator, laplacian_pyramid
from gan_lab.regularizers.base import Judged
from gan_lab.systems.conditioning import Batch
from gan_lab.systems.gan import GAN, grad_norm
from gan_lab.systems.runner import untracked
from gan_lab.viz import chain_picture


class LAPGAN(GAN):
    caps = SystemCaps(
        hooks=frozenset(HOOKS) - {"networks", "g_loss", "critic"}, one_critic=False,
        many_critics="LAPGAN has no single D judging single samples",
        not_z_alone="LAPGAN's samples also depend on the noise drawn at each level, not on z alone",
        real_logits_in_g=False, capturable=False, labels=False, mixture=False,
        summary=("LAPGAN trains one (D, G) pair per pyramid level on real conditions; there is no single G(z) judged "
                 "by a single D(x)."),
        refused_tricks=(("instance_noise", "LAPGAN's D_k judges a residual with its condition, and noise drawn once "
                                           "for the pair does not reach what D_k compares: it cancels in T(c + h) − "
                                           "T(c), and added to h and c alike D_k can subtract it (a residual has "
                                           "zero mean on every 2×2 block, on which the condition is constant). "
                                           "docs/science.md, \"Techniques\"."),))

    def __init__(self, generator: nn.Module, discriminator: nn.Module, *args, **kwargs):
        super().__init__(generator, discriminator, *args, **kwargs)
        self.levels = generator.levels

    # ---------------------------------------------------------------- one level at a time
    def real_levels(self, real: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor | None]]:
        """What each level's D judges on real data and its condition, indexed by level k = 0 … K:
        ([h_0, …, h_{K−1}, I_K], [up(I_1), …, up(I_K), None])."""
        residuals, conditions, coarse = laplacian_pyramid(real, self.levels)
        return [*residuals, coarse], [*conditions, None]

    def fake_levels(self, conditions: list[torch.Tensor | None], n: int) -> list[torch.Tensor]:
        """[G_0(z_0, c_0), …, G_{K−1}(z_{K−1}, c_{K−1}), G_K(z_K)] on fresh z and the given (real) conditions."""
        g: LaplacianGenerator = self.generator
        zs = g.split(self.sample_z(n))
        return [g.refiners[k](zs[k], conditions[k]) for k in range(self.levels)] + [g.coarse(zs[-1])]

    def judge_level(self, k: int, x: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
        return self.discriminator.level(k, x, condition)

    def level_view(self, condition: torch.Tensor | None):
        """(the condition D_k judges with, the map h ↦ what D_k judges of a residual h under it), one fresh draw
        of DiffAugment for the pair: T(c + h) − T(c) given T(c), the augmented level image split against its
        augmented condition (translation and cutout move both alike; a brightness shift stays in the
        condition). Without augmentation, or at the coarsest level (condition None): (condition, None)."""
        if condition is None or not self.tricks.with_hook("d_input"):
            return condition, None
        seen, view = self.d_view(condition)
        return seen, lambda h: view(condition + h) - seen

    def _level_critic(self, k: int, condition: torch.Tensor | None):
        """Level k's D as a function of what it judges (condition fixed), for the penalty hooks."""
        return lambda x: self.discriminator.level(k, x, condition)

    # ---------------------------------------------------------------- Algorithm 1, per level
    def d_step(self, opt_d, real: Batch, measure_grad: bool = False) -> None:
        def objective():
            reals, conditions = self.real_levels(real.x)
            with untracked():
                fakes = self.fake_levels(conditions, real.x.shape[0])
            total = real.x.new_zeros(())
            stats: dict[str, torch.Tensor] = {}
            d_losses, penalties, d_reals, d_fakes = [], [], [], []
            for k in range(self.levels + 1):
                condition, pair = self.level_view(conditions[k])  # one draw: real and fake keep one condition
                if pair is None:
                    (r, real_view), (f, fake_view) = self.d_view(reals[k]), self.d_view(fakes[k])
                else:
                    r, f, real_view, fake_view = pair(reals[k]), pair(fakes[k]), pair, pair
                real_logits, fake_logits = self.judge_level(k, r, condition), self.judge_level(k, f, condition)
                self.observe_d(real_logits, fake_logits)
                d_loss = self.loss.d_loss(real_logits, fake_logits)
                critic = self._level_critic(k, condition)
                penalty = self.regularizer.penalty(Judged(r, f, real_logits, fake_logits, (reals[k], real_view),
                                                          (fakes[k], fake_view), self.d_updates, critic, critic))
                total = total + (d_loss if penalty is None else d_loss + penalty)
                d_losses.append(d_loss)
                d_reals.append(self.loss.output(real_logits))
                d_fakes.append(self.loss.output(fake_logits))
                stats[f"level{k}/d_loss"] = d_loss
                stats[f"level{k}/d_real"], stats[f"level{k}/d_fake"] = d_reals[-1], d_fakes[-1]
                if penalty is not None:
                    penalties.append(penalty)
                    stats[f"level{k}/d_penalty"] = penalty
                for name, value in self.loss.estimates(real_logits, fake_logits).items():
                    stats[f"level{k}/{name}"] = value
                    stats[name] = stats[name] + value if name in stats else value
            stats["d_loss"] = torch.stack(d_losses).sum()
            stats["d_real"], stats["d_fake"] = torch.stack(d_reals).mean(), torch.stack(d_fakes).mean()
            if penalties:
                stats["d_penalty"] = torch.stack(penalties).sum()
            return total, stats

        self.update_discriminator(opt_d, objective, measure_grad)  # clipping reaches every level's D

    def d_grad_norms(self) -> dict[str, torch.Tensor]:
        norms = super().d_grad_norms()
        for k, net in enumerate(self.discriminator.level_networks()):
            norms[f"level{k}/grad_norm_d"] = grad_norm(net)
        return norms

    def g_step(self, opt_g, real: Batch, extra_reals: list[Batch] = (), measure_grad: bool = False) -> None:
        """One G update of every level on fresh z, each refiner conditioned on the real up(I_{k+1})."""
        _, conditions = self.real_levels(real.x)

        def objective():
            fakes = self.fake_levels(conditions, real.x.shape[0])
            g_losses = []
            for k in range(self.levels + 1):
                condition, pair = self.level_view(conditions[k])
                seen = self.d_input(fakes[k]) if pair is None else pair(fakes[k])
                g_losses.append(self.loss.g_loss(self.judge_level(k, seen, condition)))
            return torch.stack(g_losses).sum(), None, {f"level{k}/g_loss": v for k, v in enumerate(g_losses)}

        self.update_generator(opt_g, objective, measure_grad)
        if measure_grad:  # gradients of the step just taken are still in place
            g: LaplacianGenerator = self.generator
            self.accumulate({f"level{k}/grad_norm_g": grad_norm(net)
                             for k, net in enumerate([*g.refiners, g.coarse])})

    # ---------------------------------------------------------------- sampling
    @torch.no_grad()
    def generate_chain(self, z: torch.Tensor) -> list[torch.Tensor]:
        """Every level of the sampling chains of z, coarse to fine [I_K, …, I_0], in eval mode, CPU fp32
        (the EMA generator draws when ``tricks.ema`` is on, as in :meth:`generate`)."""
        generator = self.sampler
        was_training = generator.training
        generator.eval()
        try:
            return [image.float().cpu() for image in generator.chain(z.to(self.device))]
        finally:
            generator.train(was_training)

    def final_pictures(self) -> dict[str, Any]:
        """``lapgan_chain``: ``n`` sampling chains from a fixed z, every level (gan_lab/viz.py)."""
        g = torch.Generator().manual_seed(self.seed + 4321)
        images = self.generate_chain(self.sample_z(6, generator=g).cpu())
        return {"lapgan_chain": chain_picture(images, f"LAPGAN sampling chain, iteration {self.iteration}: coarse to "
                                                      "fine, I_k = up(I_k+1) + h_k")}
