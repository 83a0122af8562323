"""Wasserstein GAN (Arjovsky 2017; ECE544 and EE807 lecture notes, docs/references.md). Needs a Lipschitz critic:
regularizer=clip|gp|sn."""

import torch

from gan_lab.losses.base import GANLoss


class Wasserstein(GANLoss):
    """Critic minimises E[v_f] − E[v_r]; G minimises −E[v_f]."""

    name = "wasserstein"

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return fake_logits.mean() - real_logits.mean()

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return -fake_logits.mean()

    def estimates(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> dict[str, torch.Tensor]:
        # E_P[V] − E_Q[V]: a lower bound on K·W1(P, Q) for a K-Lipschitz critic.
        return {"wasserstein_estimate": real_logits.mean() - fake_logits.mean()}
