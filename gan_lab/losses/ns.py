"""Non-saturating GAN (Goodfellow 2014; ECE544 lecture notes eq. 11, docs/references.md): G minimises −log D(G(z))."""

import torch
import torch.nn.functional as F

from gan_lab.losses.base import SigmoidBCE


class NonSaturating(SigmoidBCE):
    """Same fixed point as minimax, strong gradients when D rejects fakes. The lab's default."""

    name = "ns"

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return F.softplus(-fake_logits).mean()  # -log σ(v_f)
