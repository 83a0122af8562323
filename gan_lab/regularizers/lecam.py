"""LeCam regularization (Tseng et al. 2021, "Regularizing Generative Adversarial Networks under Limited
Data", eq. 3; docs/science.md, "LeCam"): D's outputs are held near moving anchors of the other side's,

    R_LC = E_x[‖D(x) − α_F‖²] + E_z[‖D(G(z)) − α_R‖²],

α_R, α_F the exponential moving averages (decay 0.99) of D's mean output on real and on generated data.
Added to D's loss with weight λ; under the paper's analysis it turns the WGAN-like objective into a
LeCam-divergence minimisation that tolerates little data. ``one_sided=true`` (the default) is the authors'
released code: relu(D(x) − α_F)² + relu(α_R − D(G(z)))², penalising only outputs that have crossed the
other side's anchor; ``false`` is eq. 3 as printed. The anchors are updated with this step's means
before the penalty is taken, and zero-debiased (divided by 1 − decay^t) as the released code does.

The anchors are buffers of the system (checkpointed, exact resume); under DDP the step's means are
averaged over ranks first, so every rank holds the same anchors.
"""

from __future__ import annotations

from typing import Annotated

import torch
import torch.nn.functional as F
from torch import nn

from gan_lab.capabilities import RegularizerCaps
from gan_lab.checks import at_least, fraction
from gan_lab.distributed import Ranks
from gan_lab.regularizers.base import Judged, Regularizer


class LeCamAnchors(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("sums", torch.zeros(2))  # biased EMAs of mean D(real), mean D(fake)
        self.register_buffer("steps", torch.zeros(()))  # t, for the debiasing


class LeCam(Regularizer):
    name = "lecam"
    caps = RegularizerCaps(one_critic=True)

    def __init__(self, weight: Annotated[float, at_least(0.0), "λ"] = 0.3,
                 decay: Annotated[float, fraction(), "the anchors' EMA decay"] = 0.99,
                 one_sided: Annotated[bool, "penalise only outputs past the other side's anchor (the released "
                                            "StyleGAN2 code); false: eq. 3 as printed"] = True):
        self.weight, self.decay, self.one_sided = weight, decay, one_sided
        self.anchors = LeCamAnchors()

    def attach(self, system: nn.Module) -> None:
        system.lecam_anchors = self.anchors  # moves with the system; its buffers are replaced, not it

    @torch.no_grad()
    def update(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Fold this step's mean outputs into the anchors; return (α_R, α_F), debiased."""
        a = self.anchors
        means = Ranks.current().mean_row(torch.stack([real_logits.mean(), fake_logits.mean()]).float())
        a.sums.mul_(self.decay).add_((1.0 - self.decay) * means)
        a.steps.add_(1.0)
        alpha_r, alpha_f = (a.sums / (1.0 - self.decay ** a.steps)).unbind()
        return alpha_r, alpha_f

    def penalty(self, judged: Judged) -> torch.Tensor:
        real_logits = judged.critic_real(judged.real) if judged.real_logits is None else judged.real_logits
        fake_logits = judged.critic_fake(judged.fake) if judged.fake_logits is None else judged.fake_logits
        alpha_r, alpha_f = self.update(real_logits.detach(), fake_logits.detach())
        if self.one_sided:
            reg = F.relu(real_logits - alpha_f).pow(2).mean() + F.relu(alpha_r - fake_logits).pow(2).mean()
        else:
            reg = (real_logits - alpha_f).pow(2).mean() + (fake_logits - alpha_r).pow(2).mean()
        return self.weight * reg

    def __repr__(self) -> str:
        return f"LeCam(weight={self.weight}, decay={self.decay}, one_sided={self.one_sided})"
