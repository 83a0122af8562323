"""Balanced consistency regularization, bCR (Zhao et al. 2021, "Improved Consistency Regularization for
GANs", §3.1; docs/science.md, "Consistency regularization"): D's output is kept invariant under a
semantics-preserving augmentation T, on real and on generated images,

    L_D += λ_real·E_x[‖D(x) − D(T(x))‖²] + λ_fake·E_z[‖D(G(z)) − D(T(G(z)))‖²],

in D's step only (G's loss is unchanged). T is a fresh draw of DiffAugment transforms (gan_lab/augment.py);
the paper's CIFAR-10 T is a shift of a few pixels plus a flip, which ``translation`` (shifts up to 1/8 of the
side) stands in for. Gradients flow through both D(x) and D(T(x)), as in the paper.
"""

from __future__ import annotations

from typing import Annotated, Any

import torch

from gan_lab.augment import diff_augment, parse_policy
from gan_lab.capabilities import RegularizerCaps
from gan_lab.checks import Validator, at_least
from gan_lab.errors import ConfigError
from gan_lab.regularizers.base import Judged, Regularizer


def _transforms(value: Any) -> bool:
    try:
        return bool(parse_policy(value))
    except ConfigError:
        return False


class ConsistencyRegularization(Regularizer):
    name = "cr"
    caps = RegularizerCaps(images_only=True, augments_per_sample=True)

    def __init__(self, weight: Annotated[float, at_least(0.0), "λ_real"] = 10.0,
                 weight_fake: Annotated[float, at_least(0.0), "λ_fake (null: λ_real)"] | None = None,
                 policy: Annotated[Any, Validator(_transforms, "a comma-separated non-empty subset of color, "
                                                               "translation, cutout"),
                                   "T, the augmentation"] = "translation"):
        self.weight = weight
        self.weight_fake = weight if weight_fake is None else weight_fake
        self.policy = ",".join(parse_policy(policy, "regularizer.policy"))

    def penalty(self, judged: Judged) -> torch.Tensor:
        d_real, d_fake = judged.critic_real, judged.critic_fake
        real_logits = d_real(judged.real) if judged.real_logits is None else judged.real_logits
        fake_logits = d_fake(judged.fake) if judged.fake_logits is None else judged.fake_logits
        on_real = (d_real(diff_augment(judged.real, self.policy)) - real_logits).pow(2).mean()
        on_fake = (d_fake(diff_augment(judged.fake.detach(), self.policy)) - fake_logits).pow(2).mean()
        return self.weight * on_real + self.weight_fake * on_fake
