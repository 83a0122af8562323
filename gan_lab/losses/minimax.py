"""The original minimax game (Goodfellow 2014; ECE544 and EE807 lecture notes, docs/references.md): G minimises
log(1 − D(G(z)))."""

import torch
import torch.nn.functional as F

from gan_lab.losses.base import SigmoidBCE


class Minimax(SigmoidBCE):
    """Saturating: G's gradient vanishes when D confidently rejects fakes early in training."""

    name = "minimax"

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return -F.softplus(fake_logits).mean()  # log(1 - σ(v_f)) = -softplus(v_f)
