"""Relativistic GANs (Jolicoeur-Martineau 2018, "The relativistic discriminator: a key element missing
from standard GAN"): D judges whether real data is *more realistic than* fake data, and G's loss reads
D's outputs on real data too (``caps.g_needs_real``).

With C the critic (D's raw output), ``form`` picks f₁ and f₂ (the paper's eqs. for RGAN and RaGAN):

    sigmoid: f₁(y) = −log σ(y) = softplus(−y)   f₂(y) = −log(1 − σ(y)) = softplus(y)
    lsgan:   f₁(y) = (y − 1)²                   f₂(y) = (y + 1)²
    hinge:   f₁(y) = max(0, 1 − y)              f₂(y) = max(0, 1 + y)

``loss=rgan`` (relativistic, real and fake paired sample by sample; RSGAN for ``form=sigmoid``)::

    L_D = E[f₁(C(x_r) − C(x_f))]            L_G = E[f₁(C(x_f) − C(x_r))]

``loss=ragan`` (relativistic average; RaSGAN, RaLSGAN, RaHingeGAN)::

    L_D = E_r[f₁(C(x_r) − E_f C(x_f))] + E_f[f₂(C(x_f) − E_r C(x_r))]
    L_G = E_f[f₁(C(x_f) − E_r C(x_r))] + E_r[f₂(C(x_r) − E_f C(x_f))]

Both are symmetric in the players: G's loss is D's with real and fake swapped.
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
import torch.nn.functional as F

from gan_lab.capabilities import LossCaps
from gan_lab.losses.base import AuxWeight, GANLoss, LabelSmoothing

FORMS = {  # name: (f₁, f₂)
    "sigmoid": (lambda y: F.softplus(-y), F.softplus),
    "lsgan": (lambda y: (y - 1.0).pow(2), lambda y: (y + 1.0).pow(2)),
    "hinge": (lambda y: F.relu(1.0 - y), lambda y: F.relu(1.0 + y)),
}


class Relativistic(GANLoss):
    """RGAN: each real sample is compared with the fake sample at the same position of the batch."""

    name = "rgan"
    caps = LossCaps(g_needs_real=True)

    def __init__(self, form: Annotated[Literal[tuple(FORMS)], "f₁, f₂: sigmoid, lsgan or hinge"] = "sigmoid",
                 label_smoothing: LabelSmoothing = 0.0, aux_weight: AuxWeight = None):
        super().__init__(label_smoothing, aux_weight)
        self.form = form
        self.f1, self.f2 = FORMS[form]

    def relative(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The preferred side's objective: E[f₁(C(a) − C(b))] over pairs (the shapes must agree)."""
        if a.shape != b.shape:
            raise ValueError(f"loss=rgan pairs real and fake samples: got {tuple(a.shape)} and {tuple(b.shape)}")
        return self.f1(a - b).mean()

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return self.relative(real_logits, fake_logits)

    def g_loss(self, fake_logits: torch.Tensor, real_logits: torch.Tensor | None = None) -> torch.Tensor:
        return self.relative(fake_logits, real_logits)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(form={self.form!r})"


class RelativisticAverage(Relativistic):
    """RaGAN: each sample is compared with the mean critic value of the other side's batch."""

    name = "ragan"

    def relative(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.f1(a - b.mean()).mean() + self.f2(b - a.mean()).mean()
