"""Least-squares GAN (Mao 2017) with targets a=0 (fake), b=1 (real), c=1 (G's target)."""

import torch

from gan_lab.losses.base import GANLoss


class LeastSquares(GANLoss):
    """D minimises ½(v_r − 1)² + ½v_f²; G minimises ½(v_f − 1)²."""

    name = "lsgan"

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return 0.5 * (real_logits - 1.0).pow(2).mean() + 0.5 * fake_logits.pow(2).mean()

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return 0.5 * (fake_logits - 1.0).pow(2).mean()
