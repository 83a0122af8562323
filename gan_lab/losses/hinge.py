"""Hinge loss (Lim & Ye 2017; Miyato 2018), the SN-GAN objective."""

import torch
import torch.nn.functional as F

from gan_lab.losses.base import GANLoss


class Hinge(GANLoss):
    """D minimises relu(1 − v_r) + relu(1 + v_f); G minimises −E[v_f]."""

    name = "hinge"

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return -fake_logits.mean()
