"""LeCam regularization (Tseng et al. 2021, "Regularizing Generative Adversarial Networks under Limited
Data", eq. 3; docs/science.md, "LeCam"): D's outputs are held near moving anchors of the other side's,

    R_LC = E_x[‖D(x) − α_F‖²] + E_z[‖D(G(z)) − α_R‖²],

α_R, α_F the exponential moving averages (decay 0.99) of D's mean output on real and on generated data.
Added to D's loss with weight λ; under the paper's analysis it turns the WGAN-like objective into a
LeCam-divergence minimisation that tolerates little data.

``one_sided=true`` (the default) is the authors' released code: relu(D(x) − α_F)² + relu(α_R − D(G(z)))²,
which penalises a real output only while it is above the fake anchor and a fake output only while it is below
the real anchor (pulling each side's scores towards the other side's average); ``false`` is eq. 3 as printed.
The anchors are updated with this step's means before the penalty is taken.

The authors released two versions, which differ in how the anchors start:
- their StyleGAN2 code zero-debiases the anchors (divides by 1 − decay^t) from the first step: ``debias=true``
  (the default);
- their BigGAN CIFAR code, where λ = 0.3 comes from, keeps a plain EMA that copies the current means
  (decay 0) for its first 1,000 iterations and adds no penalty until then: ``debias=false warmup=1000``.
``warmup`` counts D updates: while it lasts the anchors follow the current means and the penalty is 0; the
anchors then start from those means rather than from 0, so debiasing applies only without a warm-up.

The anchors are buffers of the system (checkpointed, exact resume); under DDP the step's means are
averaged over ranks first, so every rank holds the same anchors.
"""

from __future__ import annotations

from dataclasses import replace
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
                 one_sided: Annotated[bool, "penalise a real output only above the fake anchor and a fake one only "
                                            "below the real anchor (the released code); false: eq. 3 as "
                                            "printed"] = True,
                 debias: Annotated[bool, "zero-debias the anchors, 1/(1 − decay^t) (the StyleGAN2 code); false: "
                                         "a plain EMA (the BigGAN code)"] = True,
                 warmup: Annotated[int, at_least(0), "D updates before the penalty starts, the anchors copying the "
                                                     "current means meanwhile (the BigGAN code: 1000)"] = 0):
        self.weight, self.decay, self.one_sided = weight, decay, one_sided
        self.debias, self.warmup = debias, warmup
        self.anchors = LeCamAnchors()
        if warmup:
            self.caps = replace(type(self).caps, capture_blocker=f"regularizer={self.name} with warmup={warmup} "
                                                                 "decides on the host when the penalty starts")

    def attach(self, system: nn.Module) -> None:
        system.lecam_anchors = self.anchors  # moves with the system; its buffers are replaced, not it

    @torch.no_grad()
    def update(self, real_logits: torch.Tensor, fake_logits: torch.Tensor,
               warming: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Fold this step's mean outputs into the anchors (``warming``: replace them); return (α_R, α_F)."""
        a = self.anchors
        means = Ranks.current().mean_in_step(torch.stack([real_logits.mean(), fake_logits.mean()]).float(),
                                             "averaging LeCam's anchors")
        decay = 0.0 if warming else self.decay
        a.sums.mul_(decay).add_((1.0 - decay) * means)
        a.steps.add_(1.0)
        if self.debias and not self.warmup:
            return (a.sums / (1.0 - self.decay ** a.steps)).unbind()
        return a.sums.unbind()

    def penalty(self, judged: Judged) -> torch.Tensor:
        real_logits = judged.critic_real(judged.real) if judged.real_logits is None else judged.real_logits
        fake_logits = judged.critic_fake(judged.fake) if judged.fake_logits is None else judged.fake_logits
        warming = judged.d_step < self.warmup
        alpha_r, alpha_f = self.update(real_logits.detach(), fake_logits.detach(), warming)
        if warming:
            return real_logits.new_zeros(())
        if self.one_sided:
            reg = F.relu(real_logits - alpha_f).pow(2).mean() + F.relu(alpha_r - fake_logits).pow(2).mean()
        else:
            reg = (real_logits - alpha_f).pow(2).mean() + (fake_logits - alpha_r).pow(2).mean()
        return self.weight * reg

    def __repr__(self) -> str:
        return (f"LeCam(weight={self.weight}, decay={self.decay}, one_sided={self.one_sided}, debias={self.debias}, "
                f"warmup={self.warmup})")
