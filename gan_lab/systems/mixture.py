"""MIX+GAN (Arora et al. 2017; the lecture on GAN generalisation and equilibrium, docs/references.md): mixtures of T
generators and T discriminators.

Payoff: Σ_ij u_i v_j φ(G_i, D_j) with u = softmax(G logits), v = softmax(D logits); each player minimises its side
of it minus λ·H(own weights), the entropy term that keeps a mixture from collapsing onto one member. Only the D and
G steps differ from Algorithm 1.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from gan_lab.capabilities import HOOKS, SystemCaps
from gan_lab.regularizers.base import Judged
from gan_lab.systems.conditioning import Batch
from gan_lab.systems.gan import GAN, total
from gan_lab.systems.runner import untracked


class MixtureGAN(GAN):
    caps = SystemCaps(
        hooks=frozenset(HOOKS) - {"networks", "g_loss", "critic"}, one_critic=False,
        many_critics="MixtureGAN has no single D judging single samples",
        not_z_alone="MixtureGAN picks the member that draws each sample apart from z",
        real_logits_in_g=False, capturable=False, mixture=False,
        summary=("MIX+GAN's step judges every member G_i by every member D_j; there is no single G(z) judged by a "
                 "single D(x) for this trick to act on."),
        acgan=("MIX+GAN's payoff weighs every (G_i, D_j) pair; AC-GAN's class loss has no such weighting here, so "
               "its members' class heads are not trained."))

    def __init__(self, *args, entropy_weight: float = 0.1, **kwargs):
        super().__init__(*args, **kwargs)
        self.entropy_weight = entropy_weight

    def _fakes(self, n: int, grad: bool, y: torch.Tensor | None) -> list[tuple[torch.Tensor, torch.Tensor, Callable]]:
        """(G_i(z_i) (given the labels y in a conditional run), what D sees of it, the map with that draw:
        :meth:`d_view`) for each member i, in turn."""
        with torch.enable_grad() if grad else untracked():
            return [(x, *self.d_view(x)) for x in (self.conditioning.generate(g, self.sample_z(n), y)
                                                     for g in self.generator.members)]

    def d_step(self, opt_d, real: Batch, measure_grad: bool = False) -> None:
        def objective():
            n = real.x.shape[0]
            y_fake = self.conditioning.fake_labels(self, n)
            u, v = self.generator.weights.detach(), self.discriminator.weights
            drawn = self._fakes(n, grad=False, y=y_fake)
            fakes = [seen for _, seen, _ in drawn]
            r, real_view = self.d_view(real.x)
            d_loss, d_real, d_fake, penalty = 0.0, 0.0, 0.0, None
            pick = self._mixture_pick(u, n)
            mixed = pick(torch.stack(fakes))  # sample n keeps its label y_fake[n], whichever member drew it
            # the mixture sample before its members' draws, and its map: sample n through its own member's draw
            fake_source = (pick(torch.stack([x for x, _, _ in drawn])),
                           lambda t: pick(torch.stack([view(t) for _, _, view in drawn])))
            for j, d in enumerate(self.discriminator.members):
                real_logits = self.conditioning.judge(d, r, real.y)[0]
                d_real = d_real + v[j].detach() * self.loss.output(real_logits)
                for i, fake in enumerate(fakes):
                    fake_logits = self.conditioning.judge(d, fake, y_fake)[0]
                    self.observe_d(real_logits, fake_logits)
                    d_loss = d_loss + u[i] * v[j] * self.loss.d_loss(real_logits, fake_logits)
                    d_fake = d_fake + u[i] * v[j].detach() * self.loss.output(fake_logits)
                p = self.regularizer.penalty(Judged(r, mixed, real_logits, None, (real.x, real_view), fake_source,
                                                    self.d_updates, self.conditioning.given(d, real.y),
                                                    self.conditioning.given(d, y_fake)))
                if p is not None:
                    penalty = p if penalty is None else penalty + p
            loss = total(d_loss - self.entropy_weight * self.discriminator.entropy(), penalty)

            def stats():  # the mixture's entropy after the step
                out = {"d_loss": d_loss, "d_real": d_real, "d_fake": d_fake,
                       "mixture/d_entropy": self.discriminator.entropy()}
                return out if penalty is None else {**out, "d_penalty": penalty}

            return loss, stats

        self.update_discriminator(opt_d, objective, measure_grad)

    def clipped_discriminators(self) -> list:
        return list(self.discriminator.members)  # clipping applies to D's weights, not its mixture logits

    def g_step(self, opt_g, real: Batch, extra_reals: list[Batch] = (), measure_grad: bool = False) -> None:
        def objective():
            y_fake = self.conditioning.fake_labels(self, real.x.shape[0])
            u, v = self.generator.weights, self.discriminator.weights.detach()
            fakes = [seen for _, seen, _ in self._fakes(real.x.shape[0], grad=True, y=y_fake)]
            g_loss = sum(u[i] * v[j] * self.loss.g_loss(self.conditioning.judge(d, fake, y_fake)[0])
                         for i, fake in enumerate(fakes) for j, d in enumerate(self.discriminator.members))
            stats = {"mixture/g_entropy": self.generator.entropy()}
            stats.update({f"mixture/g_weight_{i}": w for i, w in enumerate(u)})
            return g_loss, -self.entropy_weight * self.generator.entropy(), stats

        self.update_generator(opt_g, objective, measure_grad)

    @staticmethod
    def _mixture_pick(u: torch.Tensor, n: int) -> Callable[[torch.Tensor], torch.Tensor]:
        """One draw of the mixture for a minibatch of n: (T, N, …) stacked members -> (N, …), sample n from
        member i with probability u_i."""
        choice = torch.multinomial(u, n, replacement=True)
        return lambda stacked: stacked[choice, torch.arange(n, device=choice.device)]

    @torch.no_grad()
    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None, batch_size: int = 500,
                 to: torch.device | str = "cpu") -> torch.Tensor:
        """Draws from the mixture (given ``labels`` in a conditional run); the member choice is seeded so a fixed
        z gives a fixed picture."""
        mixture = self.sampler
        was_training = mixture.training
        mixture.eval()
        pick = torch.Generator().manual_seed(self.seed + 99)
        chunks = z.split(batch_size)
        ys = self.conditioning.chunks(labels, len(chunks), batch_size, self.device)
        try:
            parts = [mixture(chunk.to(self.device), generator=pick, y=y).float().to(to) for chunk, y in zip(chunks, ys)]
        finally:
            mixture.train(was_training)
        return torch.cat(parts)
