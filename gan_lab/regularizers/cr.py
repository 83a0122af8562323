"""Balanced consistency regularization, bCR (Zhao et al. 2021, "Improved Consistency Regularization for
GANs", §3.1; docs/science.md, "Consistency regularization"): D's output is kept invariant under a
semantics-preserving augmentation T, on real and on generated images,

    L_D += λ_real·E_x[‖D(x) − D(T(x))‖²] + λ_fake·E_z[‖D(G(z)) − D(T(G(z)))‖²],

in D's step only (G's loss is unchanged). T is a fresh draw of DiffAugment transforms (gan_lab/tricks/
diffaug.py); the paper's CIFAR-10 T is a shift of a few pixels plus a flip, which ``translation`` (shifts
up to 1/8 of the side) stands in for. Gradients flow through both D(x) and D(T(x)), as in the paper.
"""

from __future__ import annotations

import torch
from torch import nn

from gan_lab.errors import ConfigError, check_range
from gan_lab.regularizers.base import Labels, Regularizer, Source, given
from gan_lab.tricks.diffaug import diff_augment, parse_policy


class ConsistencyRegularization(Regularizer):
    name = "cr"

    def __init__(self, weight: float = 10.0, weight_fake: float | None = None, policy: str = "translation"):
        self.weight = check_range("regularizer.weight", weight, 0.0)  # λ_real
        self.weight_fake = check_range("regularizer.weight_fake", weight if weight_fake is None else weight_fake,
                                       0.0)  # λ_fake
        names = parse_policy(policy)
        if not names:
            raise ConfigError("regularizer.policy", policy, "a comma-separated subset of color, translation, cutout",
                              "Consistency regularization needs at least one transform.")
        self.policy = ",".join(names)

    def check(self, spec) -> None:
        if not spec.is_image:
            raise ConfigError("regularizer", self.name, f"a regularizer for point data with dataset={spec.name}",
                              "Consistency regularization augments images (DiffAugment transforms).")

    def penalty(self, discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor, d_step: int,
                real_logits: torch.Tensor | None = None, fake_logits: torch.Tensor | None = None,
                sources: tuple[Source, Source] | None = None, labels: Labels | None = None) -> torch.Tensor:
        d_real, d_fake = given(discriminator, labels, 0), given(discriminator, labels, 1)
        real_logits = d_real(real) if real_logits is None else real_logits
        fake_logits = d_fake(fake) if fake_logits is None else fake_logits
        on_real = (d_real(diff_augment(real, self.policy)) - real_logits).pow(2).mean()
        on_fake = (d_fake(diff_augment(fake.detach(), self.policy)) - fake_logits).pow(2).mean()
        return self.weight * on_real + self.weight_fake * on_fake
